/**
 * One socket's topics: the steps of joining and leaving one — presence first, then the hub — and
 * the subscription budgets they take (MAX_SUBSCRIPTIONS_PER_SOCKET / _PER_USER, budgets.ts), for a
 * client's frames, the inbox at welcome and the server API (SPEC §6 `/api/subscribe`,
 * `/api/unsubscribe`). Functions of the socket rather than an object of their own: an idle socket
 * holds nothing more than its two sets (bench/README.md, idle memory).
 */
import type { Position } from "../protocol/frames.ts";
import { inboxOf } from "../protocol/topics.ts";
import type { Namespace } from "../auth/namespaces.ts";
import { errorFields } from "../log.ts";
import type { Ack } from "./hub.ts";
import type { ConnectionHost, Socket } from "./connection-host.ts";
import type { SocketSubscriptions } from "./budgets.ts";
import type { SmallSet } from "./small-set.ts";

/** What these steps reach of their socket (the Connection). */
export interface TopicsSocket extends Socket {
  readonly host: ConnectionHost;
  /** Topics the socket is a hub member of (subscribed, or being subscribed). */
  readonly topics: SmallSet;
  /** Its topics that count toward the subscription budgets. */
  readonly slots: SocketSubscriptions;
  /** False once the socket closed (or was told to close). */
  readonly live: boolean;
  /** The topics the server API subscribed it to (SPEC §6), or null: none. */
  readonly serverTopics: Set<string> | null;
  serverMade(topic: string): void;
  sendJson(frame: Record<string, unknown>): void;
}

/**
 * Subscribes to a topic and, where its namespace keeps presence, joins it. Presence is written
 * first, so once a client holds the `ack` it is listed everywhere. The joiner itself is not
 * subscribed yet when its own `presence.join` goes out; it learns the members from a `presence`
 * request.
 */
export async function joinTopic(conn: TopicsSocket, topic: string, since: Position | undefined, ns: Namespace, onAck: (ack: Ack) => void): Promise<void> {
  conn.topics.add(topic);
  if (ns.presence) await conn.host.joinPresence(conn, topic);
  if (!conn.live || !conn.topics.has(topic)) return;
  try {
    await followTopic(conn, topic, since, onAck);
  } catch (error) {
    conn.host.leave(conn, topic);
    throw error;
  }
}

/** The hub part of a join; `onAck` runs right before replayed frames and live delivery. */
export async function followTopic(conn: TopicsSocket, topic: string, since: Position | undefined, onAck: (ack: Ack) => void): Promise<void> {
  conn.topics.add(topic);
  try {
    await conn.host.follow(conn, topic, since, onAck);
  } catch (error) {
    conn.topics.delete(topic);
    conn.slots.uncount(topic, conn.user!.id);
    throw error;
  }
}

/** Leaves the topic (hub and presence) and gives its budget back. True when it was a member. */
export function leaveTopic(conn: TopicsSocket, topic: string): boolean {
  const was = conn.topics.delete(topic);
  if (was) conn.host.leave(conn, topic);
  conn.slots.uncount(topic, conn.user!.id);
  conn.serverTopics?.delete(topic);
  return was;
}

/**
 * After an in-band refresh (SPEC §4: the new token's capabilities from now on): each topic the
 * socket subscribed to itself and the new credential may not subscribe to is left, with
 * `{type:"unsubscribed", topic, reason:"caps"}` — as Centrifugo and Ably do when a refreshed token
 * takes a channel away. The rules decide alone: a topic only the app can decide (`app`) stays, and
 * so do the inbox and the server API's subscriptions (the server decided those).
 */
export function leaveRefused(conn: TopicsSocket): void {
  const inbox = inboxOf(conn.user!.id);
  for (const topic of [...conn.topics]) {
    if (topic === inbox || conn.serverTopics?.has(topic) === true || conn.host.subscribeVerdict(conn, topic) !== "forbidden") continue;
    leaveTopic(conn, topic);
    conn.sendJson({ type: "unsubscribed", topic, reason: "caps" });
  }
}

/** The socket is gone: leaves every topic and gives every budget back. */
export function leaveAll(conn: TopicsSocket): void {
  for (const topic of conn.topics) conn.host.leave(conn, topic);
  conn.topics.clear();
  if (conn.user !== null) conn.slots.release(conn.user.id);
}

/**
 * `/api/subscribe` (SPEC §6): joins the topic as a client's subscribe would (presence included)
 * and sends `{type:"subscribed", topic, seq, epoch}`. No permission check: the server decided.
 * True when the socket is subscribed afterwards (already was, or now is); false when it closed
 * meanwhile or the broker was unreachable.
 */
export async function serverSubscribe(conn: TopicsSocket, topic: string, ns: Namespace): Promise<boolean> {
  if (!conn.isOpen) return false;
  topic = conn.host.topicName(topic);
  conn.serverMade(topic);
  if (conn.topics.has(topic)) return true;
  try {
    // An ephemeral topic has no position (SPEC §5): `subscribed` without seq and epoch.
    await joinTopic(conn, topic, undefined, ns, (ack) =>
      conn.sendJson(ns.delivery === "ephemeral" ? { type: "subscribed", topic } : { type: "subscribed", topic, seq: ack.seq, epoch: ack.epoch }),
    );
  } catch (error) {
    conn.serverTopics?.delete(topic);
    conn.host.log.warn("server subscribe failed", { connectionId: conn.id, topic, ...errorFields(error) });
    return false;
  }
  return conn.isOpen && conn.topics.has(topic);
}

/** `/api/unsubscribe`: leaves the topic and sends `{type:"unsubscribed", topic, reason:"server"}`. True when it was subscribed. */
export function serverUnsubscribe(conn: TopicsSocket, topic: string): boolean {
  if (!conn.isOpen || !leaveTopic(conn, topic)) return false;
  conn.sendJson({ type: "unsubscribed", topic, reason: "server" });
  return true;
}

/**
 * The personal inbox, joined at welcome when it can be at once: true when it is (this process
 * already follows it: another socket of the user), or when it is not joined at all — the inbox
 * follows the permission rules too, and a `user` namespace redefined so that the credential may
 * not subscribe to it without asking the app is not joined (SPEC §5). False: `joinInbox` next.
 */
export function joinInboxNow(conn: TopicsSocket): boolean {
  const inbox = conn.host.topicName(inboxOf(conn.user!.id));
  if (conn.host.subscribeVerdict(conn, inbox) !== "allow") return true;
  if (!conn.host.followNow(conn, inbox)) return false;
  conn.topics.add(inbox);
  return true;
}

/** Joins the inbox through the hub; false (logged) when the broker is unreachable. */
export async function joinInbox(conn: TopicsSocket): Promise<boolean> {
  try {
    await followTopic(conn, inboxOf(conn.user!.id), undefined, () => {});
    return true;
  } catch (error) {
    conn.host.log.warn("inbox join failed", { connectionId: conn.id, ...errorFields(error) });
    return false;
  }
}
