/**
 * Local fan-out of one serialized frame to this process's subscribers of a topic: one Bun
 * `server.publish`, never a loop over sockets, never a re-serialization (docs/architecture.md).
 */
import { messageTs, type Metrics } from "../metrics.ts";
import { isPresenceFrame, presenceChannel, type Socket } from "./connection-host.ts";
import type { Hub } from "./hub.ts";
import type { SwitchboardServer } from "./socket.ts";

/** Every `message` frame starts so (broker/frame.ts); `frameType` would say "message". */
const MESSAGE_HEAD = '{"type":"message",';

/**
 * Publishes `frame` to the topic's local subscribers; a drop means a subscriber passed its limit,
 * and every subscriber past `backpressureLimitBytes` is closed as a slow consumer. For a
 * `message`, the lag since its `ts` is read from the frame's tail (no parse on the hot path).
 * The hub's members of the topic are the sockets the gateway subscribed: every one is a Socket.
 */
export function fanOut(server: SwitchboardServer, metrics: Metrics, topic: string, frame: string, hub: Pick<Hub, "members">, backpressureLimitBytes: number): void {
  metrics.deliveries.inc();
  // Join/leave frames reach only the sockets that may read presence (SPEC §5).
  const channel = isPresenceFrame(frame) ? presenceChannel(topic) : topic;
  const sockets = server.subscriberCount(channel);
  if (frame.startsWith(MESSAGE_HEAD)) {
    // Nearly every frame here: its type is known, so it is not read out of the frame again.
    if (sockets > 0) metrics.framesOut.inc("message", sockets);
    metrics.socketDeliveries.inc(sockets);
    const ts = messageTs(frame);
    if (Number.isFinite(ts)) metrics.deliveryLag.observe(Math.max(0, Date.now() - ts) / 1000);
  } else {
    metrics.frameOut(frame, sockets);
  }
  if (server.publish(channel, frame, false) !== 0) return;
  // One still being sent its replay (paced by its drain) is not subscribed locally yet: this frame
  // did not go to it, and it gets it after the replay.
  // A copy: closing a socket may take it out of the members while they are being gone through.
  for (const conn of [...hub.members(topic)] as Socket[]) {
    if (conn.receives(topic) && conn.bufferedAmount() >= backpressureLimitBytes) conn.closeSlow();
  }
}
