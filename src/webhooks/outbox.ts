/**
 * The webhook outbox: events waiting to be delivered, durable for as long as the deployment's
 * store is (Redis: Streams with a consumer group; without Redis: this process's memory).
 *
 * The contract both implementations keep (test/suites/outbox.suite.ts):
 * - `append` returns once the event is stored; from then on it is delivered at least once,
 *   unless it is given up (`done` after WEBHOOK_MAX_AGE_S).
 * - Entries are divided into lanes (Redis: one stream per shard of the ordering keys). A lane is
 *   taken by one process of the deployment at a time; every entry of one key is in the same lane,
 *   so only one process ever sends a key's events, and it gets them from `take` in append order.
 * - `take` hands each entry out once per tenure of its lane. When a process loses a lane (its lease
 *   lapsed, it crashed) the next holder gets the lane's undelivered entries again, oldest first.
 * - `holds(entry)` says whether this process still holds the entry's lane: a sender checks it
 *   before each attempt, so a lane that moved away is not sent from two places at once.
 */
import type { WebhookEvent } from "./events.ts";

export interface OutboxEntry {
  /** The entry's id within its lane (Redis: the stream entry id). */
  readonly id: string;
  /** The lane and the tenure it was taken under; opaque. */
  readonly lane: string;
  /** Its ordering key (events.ts `orderingKey`). */
  readonly key: string;
  readonly event: WebhookEvent;
  /** The request body: the event serialized once, when it was appended. */
  readonly body: string;
}

export interface OutboxStats {
  /** Entries stored and not yet done, in the whole deployment. */
  length: number;
  /** `at` of the oldest of them; null when there are none. */
  oldestAt: number | null;
}

export interface Outbox {
  /** Starts taking lanes. A process that only appends (or a test) need not start. */
  start(): Promise<void>;
  append(key: string, event: WebhookEvent): Promise<void>;
  /**
   * Up to `max` entries not handed out before, from the lanes this process holds, in append order
   * per lane. Waits up to `waitMs` when there are none yet; resolves with [] once closed.
   */
  take(max: number, waitMs: number): Promise<OutboxEntry[]>;
  /** True while this process still holds the entry's lane (same tenure as when it was taken). */
  holds(entry: OutboxEntry): boolean;
  /** The entry was delivered or given up: removes it for good. */
  done(entry: OutboxEntry): Promise<void>;
  stats(): Promise<OutboxStats>;
  /** Gives up every lane (another process takes them at once) and stops. */
  close(): Promise<void>;
}
