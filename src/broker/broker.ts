/**
 * The Broker moves publications between the machines of a deployment and keeps each topic's
 * history. It is the one ordering point per topic: `publish` appends to the history and hands
 * the publication to every subscribed process in one atomic step, so order and recovery can
 * never disagree. It does not deliver to sockets — the gateway's hub does that (phoenix's
 * broadcast vs local_broadcast).
 *
 * Implementations: MemoryBroker (one process), RedisBroker (any number). Both pass
 * test/suites/broker.suite.ts unchanged.
 */
import type { Position } from "../protocol/frames.ts";
import type { UserCall } from "../protocol/api.ts";
import type { Announcement } from "../stores/stores.ts";

export type { Position };

/** How many publications a topic keeps for recovery (0: none) and how long after its last one. */
export interface HistoryPolicy {
  size: number;
  ttlS: number;
}

/** One publication, as every process receives it. */
export interface Publication {
  topic: string;
  /** Rises by exactly 1 per publication on the topic within an epoch; the first is 1. */
  seq: number;
  /** Changes only when the topic's history was lost; `seq` then starts again at 1. */
  epoch: string;
  /** The complete `message` frame, serialized once at the ordering point and delivered as is. */
  frame: string;
}

export interface PublishInput {
  /** The publisher's user id, or "server" for the HTTP API. */
  from: string;
  data: unknown;
  /** Epoch milliseconds, set by the process that accepted the publication. */
  ts: number;
  /**
   * Idempotency key (≤ 64 chars): the same key on the same topic within the history TTL
   * returns the first publication's position and publishes nothing.
   */
  key?: string;
}

export interface PublishResult {
  seq: number;
  epoch: string;
  /** True when `key` had been seen: nothing was published this time. */
  duplicate: boolean;
}

export interface HistoryResult {
  /** The topic's latest position now; `{seq: 0}` and a fresh epoch for a topic never published. */
  position: Position;
  /**
   * With `since`: every publication after `since.seq`, in order and contiguous, when they are all
   * still kept (`recovered: true`). Empty otherwise, and always empty without `since`.
   */
  publications: Publication[];
  /**
   * True when `since` is in the current epoch and nothing after it has been trimmed or expired.
   * False without `since`.
   */
  recovered: boolean;
}

/** Messages between processes that are not topic traffic. At most once, every process. */
export type ControlMessage =
  | { type: "revoke-session"; sid: string }
  /** The user's credentials up to a second were revoked (`disconnect` with `revoke`): forget what was kept for them. */
  | { type: "revoke-user"; user: string }
  | { type: "canary"; instance: string; nonce: string }
  /** A server API call for a user's sockets on every machine, and each machine's reply (gateway/server-calls.ts). */
  | { type: "call"; id: string; from: string; call: UserCall }
  | { type: "call-reply"; id: string; to: string; instance: string; sockets: number };

export interface BrokerEvents {
  /** A publication on a topic this process subscribed to, in the order the broker received it. */
  onPublication(publication: Publication): void;
  /** An ephemeral frame (presence changes): no seq, not in history, at most once. */
  onEphemeral(topic: string, frame: string): void;
  onControl(message: ControlMessage): void;
  /**
   * The link to the other processes was lost and is back: publications may have been missed, so
   * the hub re-reads history from its last delivered seq — for `topics` (the topics of the link
   * that came back, e.g. one Redis Cluster shard), or for every topic when `topics` is absent.
   */
  onReconnect(topics?: string[]): void;
}

/**
 * How far this process's hearing of control messages reaches, so that what it learned from a read
 * can be kept safely (the revocation fence, auth/revocation-view.ts). A process that sends a control
 * message and then waits `windowMs` before it answers anyone knows that every process whose fence is
 * `current` at a later moment has heard the message by then.
 */
export interface ControlFence {
  /** How long a sender waits after its control message was taken before it answers (REVOCATION_FENCE_MS). */
  readonly windowMs: number;
  /**
   * The unbroken stretch of hearing: null while control messages could go unheard (the link is
   * down), another number after every break. Equal at two moments: everything in between was heard.
   */
  continuity(): number | null;
  /** True when every control message taken at least `withinMs` (default `windowMs`) ago has been heard here. */
  current(withinMs?: number): boolean;
  /**
   * A credential check is about to ask `current`: the canaries that make it true run for a while
   * after the last such call and stop when none came (an idle process does not wake 20 times a
   * second for them). After such a lapse `current` is false until a canary sent after this call
   * came back (one round trip): the checks meanwhile read the store.
   */
  wanted(): void;
  /**
   * The control message as a store publishes it in the transaction that writes a revocation
   * (stores.ts `Announcement`): behind the fence a revocation must never be stored unannounced.
   */
  announcement(message: ControlMessage): Announcement;
}

export interface Broker {
  /**
   * Present where control messages are ordered with this process's own canaries (one Redis): the
   * embedded broker has no other process, and on a Redis Cluster PUBLISHes taken by different nodes
   * have no common order, so there is no fence there.
   */
  readonly fence?: ControlFence;
  start(events: BrokerEvents): Promise<void>;
  /** Fails with SwitchboardError `unavailable` (never a false ack) when it cannot reach the ordering point. */
  publish(topic: string, input: PublishInput): Promise<PublishResult>;
  /** Sends an ephemeral frame to every process subscribed to the topic. Best effort. */
  broadcast(topic: string, frame: string): Promise<void>;
  sendControl(message: ControlMessage): Promise<void>;
  /** The topic's position, and with `since` what came after it (see HistoryResult). */
  history(topic: string, since?: Position): Promise<HistoryResult>;
  /**
   * The topic's latest seq, 0 when it has none — read without bringing the topic into existence
   * (`history` gives a never-published topic an epoch and stores it; this stores nothing).
   */
  latestSeq(topic: string): Promise<number>;
  /** This process wants the topic's publications. Resolves once they will arrive. Idempotent. */
  subscribe(topic: string): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
  /** False while the ordering point is unreachable (`/readyz` answers 503). */
  readonly healthy: boolean;
  close(): Promise<void>;
}
