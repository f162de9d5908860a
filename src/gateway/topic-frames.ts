/**
 * The topic frames of an open socket (SPEC §3): `subscribe` (with `since`, a replay), `unsubscribe`
 * and `presence`. Every check goes to the host's one decision point (auth/permissions.ts); a
 * refusal throws a coded error, which the connection turns into an `error` frame.
 */
import type { ClientFrame } from "../protocol/frames.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { isValidTopic, TOPIC_RULE } from "../protocol/topics.ts";
import { MEMBERS_PER_TOKEN, REPLAYED_PER_TOKEN, sizeCost } from "../budgets/cost.ts";
import { joinTopic, leaveTopic, type TopicsSocket } from "./socket-topics.ts";

type Frame<T extends ClientFrame["type"]> = Extract<ClientFrame, { type: T }>;

/** What a topic frame handler reaches of its socket (the Connection). */
export interface TopicFrameSocket extends TopicsSocket {
  /** Takes `tokens` more from the socket's rate limit: big answers are charged by their size (SPEC §8). */
  chargeFlood(tokens: number): void;
}

/** `subscribe`: acked with the topic's position (none on an ephemeral topic), then replay and live frames. */
export async function onSubscribe(conn: TopicFrameSocket, frame: Frame<"subscribe">): Promise<void> {
  const { since, ref } = frame;
  const ns = await conn.host.authorize(conn, "subscribe", frame.topic);
  const topic = conn.host.topicName(frame.topic);
  if (since !== undefined) await conn.host.authorize(conn, "history", topic);
  // The socket may have closed while the app was asked: its topics were already left, so
  // joining now would list a ghost member and hold a subscription slot for good.
  if (!conn.live) return;
  conn.slots.count(topic, conn.user!.id);
  await joinTopic(conn, topic, since, ns, (ack) => {
    if (ns.delivery === "ephemeral") return conn.sendJson({ type: "ack", ref, topic, recovered: false });
    if (since !== undefined) conn.host.metrics.recoveries.inc({ recovered: String(ack.recovered) });
    // A replay costs by its size (SPEC §8): one token per 10 messages; the frame paid one.
    if (since !== undefined) conn.chargeFlood(sizeCost(ack.replayed, REPLAYED_PER_TOKEN) - 1);
    conn.sendJson({ type: "ack", ref, topic, seq: ack.seq, epoch: ack.epoch, recovered: ack.recovered });
  });
}

/** `unsubscribe`: acked whether or not the socket was subscribed. */
export function onUnsubscribe(conn: TopicFrameSocket, frame: Frame<"unsubscribe">): void {
  if (!isValidTopic(frame.topic)) throw new SwitchboardError(ErrorCode.badRequest, TOPIC_RULE);
  leaveTopic(conn, frame.topic);
  conn.sendJson({ type: "ack", ref: frame.ref, topic: frame.topic });
}

/** `presence`: the topic's members, charged by their number (SPEC §8). */
export async function onPresence(conn: TopicFrameSocket, frame: Frame<"presence">): Promise<void> {
  await conn.host.authorize(conn, "presence", frame.topic);
  const members = await conn.host.members(frame.topic);
  conn.chargeFlood(sizeCost(members.length, MEMBERS_PER_TOKEN) - 1);
  conn.sendJson({ type: "presence", ref: frame.ref, topic: frame.topic, members });
}
