/**
 * The `publish` frames of one socket, pipelined: each is handed to the broker in arrival order
 * (one ordering point per topic, one FIFO connection) and the socket's queue moves on without
 * waiting for the round trip. Acks come back in the same order. At most MAX_PUBLISHES_IN_FLIGHT
 * wait; past that the queue waits for the newest.
 */
import type { PublishResult } from "../broker/broker.ts";
import type { ClientFrame } from "../protocol/frames.ts";
import type { ConnectionHost, Socket } from "./connection-host.ts";

/** Publishes of one socket waiting for the broker before its queue waits for them too. */
export const MAX_PUBLISHES_IN_FLIGHT = 64;

type PublishFrame = Extract<ClientFrame, { type: "publish" }>;

/** What a publish reaches of its socket (the Connection). */
export interface PublishingSocket extends Socket {
  readonly host: ConnectionHost;
  /** Publishes handed to the broker and not yet acknowledged. */
  publishesInFlight: number;
  sendJson(frame: Record<string, unknown>): void;
  sendError(ref: number | undefined, error: unknown): void;
}

/**
 * Resolves once the queue may take the next frame; the ack (or error frame) follows later. Without
 * a promise of its own when the rules decide alone (no AUTHZ_URL question): the publish reaches
 * the broker in this same step, a few microtask hops sooner on the hot path.
 */
export function onPublish(conn: PublishingSocket, frame: PublishFrame): Promise<void> | undefined {
  const allowed = conn.host.authorize(conn, "publish", frame.topic);
  if (allowed instanceof Promise) return allowed.then(() => handOver(conn, frame));
  return handOver(conn, frame);
}

function handOver(conn: PublishingSocket, frame: PublishFrame): Promise<void> | undefined {
  const { ref, topic } = frame;
  conn.publishesInFlight += 1;
  const acked = conn.host.publish(topic, { from: conn.user!.id, data: frame.data, ts: Date.now(), key: frame.key }).then(
    (result) => conn.send(ackFrame(ref, topic, result)),
    (error: unknown) => conn.sendError(ref, error),
  );
  void acked.finally(() => (conn.publishesInFlight -= 1));
  return conn.publishesInFlight >= MAX_PUBLISHES_IN_FLIGHT ? acked.then(() => {}) : undefined;
}

/**
 * `{type:"ack", ref?, topic, seq?, epoch?}` as JSON.stringify would write it, built as a string (one
 * per publish). null: an ephemeral topic, which has no position (SPEC §5).
 */
export function ackFrame(ref: number | undefined, topic: string, result: PublishResult | null): string {
  const head = ref === undefined ? `{"type":"ack","topic":${JSON.stringify(topic)}` : `{"type":"ack","ref":${ref},"topic":${JSON.stringify(topic)}`;
  return result === null ? `${head}}` : `${head},"seq":${result.seq},"epoch":${JSON.stringify(result.epoch)}}`;
}
