/**
 * Local fan-out of one serialized frame to this process's subscribers of a topic: one Bun
 * `server.publish`, never a loop over sockets, never a re-serialization (docs/architecture.md).
 */
import { messageTs, type Metrics } from "../metrics.ts";
import { isPresenceFrame, presenceChannel, type Socket } from "./connection-host.ts";
import type { SwitchboardServer } from "./socket.ts";

/**
 * Publishes `frame` to the topic's local subscribers; a drop means a subscriber passed its limit,
 * and every subscriber past `backpressureLimitBytes` is closed as a slow consumer. For a
 * `message`, the lag since its `ts` is read from the frame's tail (no parse on the hot path).
 * `members` are the hub's members of the topic: the sockets the gateway subscribed.
 */
export function fanOut(server: SwitchboardServer, metrics: Metrics, topic: string, frame: string, members: () => Iterable<Socket>, backpressureLimitBytes: number): void {
  metrics.deliveries.inc();
  // Join/leave frames reach only the sockets that may read presence (SPEC §5).
  const channel = isPresenceFrame(frame) ? presenceChannel(topic) : topic;
  const sockets = server.subscriberCount(channel);
  metrics.frameOut(frame, sockets);
  if (frame.startsWith('{"type":"message"')) {
    metrics.socketDeliveries.inc(sockets);
    const ts = messageTs(frame);
    if (Number.isFinite(ts)) metrics.deliveryLag.observe(Math.max(0, Date.now() - ts) / 1000);
  }
  if (server.publish(channel, frame, false) !== 0) return;
  // One still being sent its replay (paced by its drain) is not subscribed locally yet: this frame
  // did not go to it, and it gets it after the replay.
  // A copy: closing a socket may take it out of the members while they are being gone through.
  for (const conn of [...members()]) {
    if (conn.receives(topic) && conn.bufferedAmount() >= backpressureLimitBytes) conn.closeSlow();
  }
}
