/**
 * The `publish` frames of one socket, pipelined: each is handed to the broker in arrival order
 * (one ordering point per topic, one FIFO connection) and the socket's queue moves on without
 * waiting for the round trip. Acks come back in the same order. At most MAX_PUBLISHES_IN_FLIGHT
 * wait; past that the queue waits for the newest.
 */
import type { ClientFrame } from "../protocol/frames.ts";
import type { ConnectionHost, Socket } from "./connection-host.ts";

/** Publishes of one socket waiting for the broker before its queue waits for them too. */
export const MAX_PUBLISHES_IN_FLIGHT = 64;

/** What a publish reaches of its socket (the Connection). */
export interface PublishingSocket extends Socket {
  readonly host: ConnectionHost;
  /** Publishes handed to the broker and not yet acknowledged. */
  publishesInFlight: number;
  sendJson(frame: Record<string, unknown>): void;
  sendError(ref: number | undefined, error: unknown): void;
}

/** Resolves once the queue may take the next frame; the ack (or error frame) follows later. */
export async function onPublish(conn: PublishingSocket, frame: Extract<ClientFrame, { type: "publish" }>): Promise<void> {
  const { host } = conn;
  await host.authorize(conn, "publish", frame.topic);
  const { ref, topic } = frame;
  conn.publishesInFlight += 1;
  const acked = host.publish(topic, { from: conn.user!.id, data: frame.data, ts: Date.now(), key: frame.key }).then(
    // null: an ephemeral topic, which has no position (SPEC §5).
    (result) => conn.sendJson(result === null ? { type: "ack", ref, topic } : { type: "ack", ref, topic, seq: result.seq, epoch: result.epoch }),
    (error: unknown) => conn.sendError(ref, error),
  );
  void acked.finally(() => (conn.publishesInFlight -= 1));
  if (conn.publishesInFlight >= MAX_PUBLISHES_IN_FLIGHT) await acked;
}
