/**
 * What a Connection needs from the rest of the process, declared from its side: the gateway
 * implements it, and src/gateway/connection.test.ts implements it with fakes. A Connection never
 * sees the concrete Gateway, Hub, broker or presence.
 */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { Identity, Outcome, Via } from "../auth/credentials.ts";
import type { Position, PublishInput, PublishResult } from "../broker/broker.ts";
import type { Caps } from "../auth/caps.ts";
import type { Action, Decision } from "../auth/permissions.ts";
import type { Namespace } from "../auth/namespaces.ts";
import type { PresenceMember, User } from "../protocol/frames.ts";
import type { Ack, Member } from "./hub.ts";
import type { Registered } from "./registry.ts";
import type { SubscriptionBudget } from "./budgets.ts";

/** What the host (and the registry, hub and presence ledger) sees of one socket. */
export interface Socket extends Member, Registered {
  readonly via: Via;
  readonly user: User | null;
  /** What the credential grants (SPEC §5); null: the namespaces' rules. */
  readonly caps: Caps | null;
  readonly isOpen: boolean;
  readonly openedAt: number;
  /** The credential's expiry (epoch seconds), when it limits the socket's life. */
  readonly expiresAt: number | null;
  /** When the socket's credential was issued (epoch seconds), when known: revocation by user compares it. */
  readonly issuedAt: number | null;
  /** When the sweep retires this socket with 1012 (MAX_CONNECTION_AGE_S), or null. */
  readonly retireAt: number | null;
  close(code: number, reason: string): void;
  /** Closes with 4009 after it passed the backpressure limit. */
  closeSlow(): void;
  /** Bytes queued for the peer and not yet sent. */
  bufferedAmount(): number;
  /** True when the topic's local fan-out reaches this socket (Bun `isSubscribed`). */
  receives(topic: string): boolean;
  /** `/api/subscribe`: joins as a client subscribe would (the namespace's presence and delivery) and sends `subscribed`; true when subscribed afterwards. */
  serverSubscribe(topic: string, ns: Namespace): Promise<boolean>;
  /** `/api/unsubscribe`: leaves and sends `unsubscribed`; true when it was subscribed. */
  serverUnsubscribe(topic: string): boolean;
}

/** The settings a Connection reads. */
export type ConnectionConfig = Pick<Config, "rateLimitPerS" | "rateLimitBurst" | "authTimeoutMs" | "instanceId" | "region" | "backpressureLimitBytes">;

export interface ConnectionHost {
  readonly config: ConnectionConfig;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** MAX_SUBSCRIPTIONS_PER_SOCKET, and MAX_SUBSCRIPTIONS_PER_USER over the user's sockets here: `take` throws `limit_exceeded`. */
  readonly subscriptions: SubscriptionBudget;
  /** Checks a first-message token (auth/credentials.ts). Rejects when the stores are unreachable. */
  authenticate(token: string): Promise<Outcome | null>;
  /** Admits a socket that authenticated after its upgrade: false when its user is at its cap. */
  admit(conn: Socket, identity: Identity): boolean;
  /** The socket's credential was replaced by an in-band refresh (new session id, expiry, caps). */
  renewed(conn: Socket, identity: Identity): void;
  /** The socket sent `welcome`. */
  opened(conn: Socket): void;
  /** The socket is gone: stop counting it. */
  forget(conn: Socket): void;
  /** Joins the topic's local fan-out and the broker (hub); `onAck` runs before replay and live frames. */
  follow(conn: Socket, topic: string, since: Position | undefined, onAck: (ack: Ack) => void): Promise<void>;
  /**
   * Joins the topic's local fan-out at once when this process already follows it with a known
   * position (no ack, no replay: the auto-joined inbox); false when a `follow` is needed.
   */
  followNow(conn: Socket, topic: string): boolean;
  /**
   * The copy of a topic's name this process already holds (the hub's), else `topic`: the members of
   * a topic share one string instead of each keeping the one its frame was parsed into.
   */
  topicName(topic: string): string;
  /** Lists the socket in the topic's presence (retried in the background when the write fails). */
  joinPresence(conn: Socket, topic: string): Promise<void>;
  /** Leaves the topic's fan-out and, when it was listed, its presence. Never throws. */
  leave(conn: Socket, topic: string): void;
  /**
   * The one decision point (auth/permissions.ts) for this socket's user and caps: the topic's
   * namespace, or `bad_request`, `forbidden` or `unavailable`. Answered without a promise (returns
   * or throws) when the rules decide alone; a promise when the app (AUTHZ_URL) is asked.
   */
  authorize(conn: Socket, action: Action, topic: unknown): Namespace | Promise<Namespace>;
  /** Whether the socket's credential reads the topic's join/leave frames (the `presence` action). */
  readsPresence(conn: Socket, topic: string): boolean;
  /**
   * Whether the socket's credential may subscribe to the topic by the rules alone (`ask`: only the
   * app can tell): the inbox is joined at welcome when `allow`; a refresh leaves what is `forbidden`.
   */
  subscribeVerdict(conn: Socket, topic: string): Decision["verdict"];
  /**
   * Publishes at the broker; rejects with a SwitchboardError (`unavailable` when unreachable).
   * Resolves with null for an ephemeral topic: sent, without a position.
   */
  publish(topic: string, input: PublishInput): Promise<PublishResult | null>;
  members(topic: string): Promise<PresenceMember[]>;
  /** Counts and logs a refused authentication. */
  noteAuthFailure(reason: string, fields: { connectionId?: string; ip?: string }): void;
}

/** What the upgrade knows about a socket before it opens. */
export interface ConnectionInit {
  id: string;
  ip: string;
  /** Null for a socket that authenticates with its first frame. */
  identity: Identity | null;
  retireAt: number | null;
  /** Set when the process is shedding load: the socket is closed 1013 at once, with this retry hint. */
  shedRetryMs?: number;
}

/**
 * The local (Bun) channel of a topic's `presence.join` / `presence.leave` frames: only the sockets
 * whose credential may read presence join it (SPEC §5), the others get the topic's messages only.
 * A NUL never appears in a topic name.
 */
export function presenceChannel(topic: string): string {
  return `${topic}\u0000presence`;
}

/** Whether a serialized frame is a join/leave announcement (broker/frame order: `type` first). */
export function isPresenceFrame(frame: string): boolean {
  return frame.startsWith('{"type":"presence.');
}
