/**
 * The embedded broker for a single process (no REDIS_URL). Same contract as RedisBroker:
 * contiguous seq per topic from 1, an epoch that changes when the topic's history is lost,
 * history bounded by `historySize` and kept `historyTtlS` after the topic's last publication,
 * idempotency keys remembered for `historyTtlS` (per topic with `historyFor`).
 *
 * Publications are handed to `onPublication` synchronously inside `publish`, after the append:
 * publish order is delivery order.
 */
import type { Broker, BrokerEvents, ControlMessage, HistoryPolicy, HistoryResult, Position, Publication, PublishInput, PublishResult } from "./broker.ts";
import { messageFrame } from "./frame.ts";

interface TopicLog {
  epoch: string;
  seq: number;
  /** Newest last; at most historySize. */
  entries: Publication[];
  /**
   * What the topic really holds, counted against `historyMaxBytes` (see the COST_ constants): its
   * bookkeeping, its frames and publication records, its idempotency keys.
   */
  bytes: number;
  /** Idempotency key → the first publication's position and when it is forgotten. */
  keys: Map<string, { seq: number; epoch: string; expiresAt: number }>;
  /** The whole log is forgotten at this time (epoch lost) unless published to again. */
  expiresAt: number;
}

export interface MemoryBrokerOptions {
  historySize: number;
  historyTtlS: number;
  /** Per topic (its namespace's `history`), when set; otherwise historySize / historyTtlS for all. */
  historyFor?: (topic: string) => HistoryPolicy;
  /**
   * Budget for the history of all topics together: the heap they really hold (bookkeeping, frames,
   * idempotency keys; subscribe-only topics too), estimated per item (COST_*). Past it, the
   * topics published least recently are forgotten whole — their epoch is lost, so their
   * subscribers get `resync` and a `since` into them `recovered:false`: a visible loss, never a
   * silent one. Default: unbounded.
   */
  historyMaxBytes?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/**
 * Heap bytes per item, measured on Bun 1.4 (README "Operations": heap vs counted): a topic's
 * record with its maps, epoch and name; a publication's record besides its frame; an idempotency
 * key's map entry and record besides its text.
 */
const COST_TOPIC = 440;
const COST_PUBLICATION = 100;
const COST_KEY = 250;

/** Heap bytes of a string's characters: one each when all are Latin-1, two otherwise. */
function textBytes(text: string): number {
  return /[^\u0000-\u00ff]/.test(text) ? 2 * text.length : text.length;
}

export function newEpoch(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 8);
}

export class MemoryBroker implements Broker {
  /** Least recently published first (a publish moves its topic to the end). */
  private readonly logs = new Map<string, TopicLog>();
  /** Heap bytes counted over all topics. */
  private bytes = 0;
  private readonly subscribed = new Set<string>();
  private events: BrokerEvents | null = null;
  private sweeper: ReturnType<typeof setInterval> | null = null;
  private readonly now: () => number;
  readonly healthy = true;

  constructor(private readonly options: MemoryBrokerOptions) {
    this.now = options.now ?? Date.now;
  }

  async start(events: BrokerEvents): Promise<void> {
    this.events = events;
    const every = Math.min(60_000, Math.max(1000, (this.options.historyTtlS * 1000) / 2));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref?.();
  }

  async publish(topic: string, input: PublishInput): Promise<PublishResult> {
    const now = this.now();
    const log = this.live(topic, now) ?? this.create(topic, now);
    const policy = this.historyOf(topic);
    const ttlMs = policy.ttlS * 1000;
    if (input.key !== undefined) {
      const seen = log.keys.get(input.key);
      if (seen !== undefined && seen.expiresAt > now) return { seq: seen.seq, epoch: seen.epoch, duplicate: true };
    }
    log.seq += 1;
    log.expiresAt = now + ttlMs;
    this.logs.delete(topic);
    this.logs.set(topic, log);
    const publication: Publication = {
      topic,
      seq: log.seq,
      epoch: log.epoch,
      frame: messageFrame(topic, log.seq, log.epoch, input),
    };
    if (policy.size > 0) {
      log.entries.push(publication);
      this.account(log, publicationBytes(publication));
      while (log.entries.length > policy.size) this.account(log, -publicationBytes(log.entries.shift()!));
    }
    if (input.key !== undefined) {
      if (!log.keys.has(input.key)) this.account(log, keyBytes(input.key));
      log.keys.set(input.key, { seq: log.seq, epoch: log.epoch, expiresAt: now + ttlMs });
    }
    this.enforceBudget(topic);
    if (this.subscribed.has(topic)) this.events?.onPublication(publication);
    return { seq: log.seq, epoch: log.epoch, duplicate: false };
  }

  async broadcast(topic: string, frame: string): Promise<void> {
    if (this.subscribed.has(topic)) this.events?.onEphemeral(topic, frame);
  }

  async sendControl(message: ControlMessage): Promise<void> {
    this.events?.onControl(message);
  }

  async history(topic: string, since?: Position): Promise<HistoryResult> {
    const now = this.now();
    const log = this.live(topic, now) ?? this.create(topic, now);
    const position = { seq: log.seq, epoch: log.epoch };
    if (since === undefined) return { position, publications: [], recovered: false };
    if (since.epoch !== log.epoch || since.seq > log.seq) return { position, publications: [], recovered: false };
    if (since.seq === log.seq) return { position, publications: [], recovered: true };
    const oldest = log.entries[0]?.seq ?? log.seq + 1;
    if (oldest > since.seq + 1) return { position, publications: [], recovered: false };
    const publications = log.entries.slice(since.seq + 1 - oldest);
    return { position, publications, recovered: true };
  }

  async latestSeq(topic: string): Promise<number> {
    return this.live(topic, this.now())?.seq ?? 0;
  }

  async subscribe(topic: string): Promise<void> {
    this.subscribed.add(topic);
  }

  async unsubscribe(topic: string): Promise<void> {
    this.subscribed.delete(topic);
  }

  async close(): Promise<void> {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    this.events = null;
  }

  private historyOf(topic: string): HistoryPolicy {
    return this.options.historyFor?.(topic) ?? { size: this.options.historySize, ttlS: this.options.historyTtlS };
  }

  /** The topic's log if it has not expired; an expired one is forgotten (its epoch is lost). */
  private live(topic: string, now: number): TopicLog | undefined {
    const log = this.logs.get(topic);
    if (log !== undefined && log.expiresAt <= now) {
      this.forget(topic, log);
      return undefined;
    }
    return log;
  }

  private account(log: TopicLog, bytes: number): void {
    log.bytes += bytes;
    this.bytes += bytes;
  }

  private forget(topic: string, log: TopicLog): void {
    this.logs.delete(topic);
    this.bytes -= log.bytes;
  }

  /** Forgets the least recently published topics (never `current`) until within the budget. */
  private enforceBudget(current: string): void {
    const max = this.options.historyMaxBytes;
    if (max === undefined) return;
    for (const [topic, log] of this.logs) {
      if (this.bytes <= max) return;
      if (topic !== current) this.forget(topic, log);
    }
  }

  /** Heap bytes counted over all topics (for tests and metrics). */
  get historyBytes(): number {
    return this.bytes;
  }

  /** A topic's log, new: a subscribe-only topic costs its bookkeeping too. */
  private create(topic: string, now: number): TopicLog {
    const log: TopicLog = { epoch: newEpoch(), seq: 0, entries: [], bytes: 0, keys: new Map(), expiresAt: now + this.historyOf(topic).ttlS * 1000 };
    this.logs.set(topic, log);
    this.account(log, COST_TOPIC + textBytes(topic));
    this.enforceBudget(topic);
    return log;
  }

  private sweep(): void {
    const now = this.now();
    for (const [topic, log] of this.logs) {
      if (log.expiresAt <= now) {
        this.forget(topic, log);
        continue;
      }
      for (const [key, seen] of log.keys) {
        if (seen.expiresAt > now) continue;
        log.keys.delete(key);
        this.account(log, -keyBytes(key));
      }
    }
  }
}

function publicationBytes(publication: Publication): number {
  return COST_PUBLICATION + textBytes(publication.frame);
}

function keyBytes(key: string): number {
  return COST_KEY + textBytes(key);
}
