/**
 * RedisOutbox: the webhook outbox of a deployment over Redis, on Streams with a consumer group.
 *
 * - Ordering keys are hashed onto `shards` (16) streams `sb:{wh:<n>}:events`; an event is one
 *   XADD (fields `k` = ordering key, `e` = the body). Each stream has one consumer group.
 * - Each shard is sent by one process at a time, the holder of its lease (shard-leases.ts). So
 *   two processes never send one key's events at once, and a key's events come out of one stream
 *   in append order.
 * - A new holder first takes over what the previous holder had read but not finished (its
 *   pending entries, XAUTOCLAIM), oldest first, then reads new entries (XREADGROUP `>`).
 *   A crashed holder's lease runs out after `leaseMs` (default 10 s): its shards are taken within
 *   leaseMs × 1.25 of its last renewal.
 * - `done` is XACK + XDEL: a stream holds exactly the events not yet delivered or given up.
 */
import type { LogFn, RedisClient } from "../redis/connection.ts";
import { randomEpoch } from "../redis/connection.ts";
import type { WebhookEvent } from "./events.ts";
import type { Outbox, OutboxEntry, OutboxStats } from "./outbox.ts";
import { ShardLeases, leaseKeys, type Tenure } from "./shard-leases.ts";

export const SHARDS = 16;
const GROUP = "senders";

export const outboxKeys = {
  events: (shard: number) => `sb:{wh:${shard}}:events`,
  ...leaseKeys,
};

/** The shard of an ordering key (FNV-1a), the same on every machine. */
export function shardOf(key: string, shards = SHARDS): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}

type StreamEntry = [id: string, fields: string[]];

export interface RedisOutboxOptions {
  /** A command connection (createConnection); shared, not closed here. */
  redis: RedisClient;
  instanceId: string;
  /** Default 10 000. */
  leaseMs?: number;
  /** How often held shards are read for entries other processes appended. Default 250. */
  pollMs?: number;
  log?: LogFn;
}

export class RedisOutbox implements Outbox {
  private readonly redis: RedisClient;
  /** The consumer name: one per process incarnation. */
  readonly consumer: string;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly log: LogFn;
  private readonly leases: ShardLeases;
  private closed = false;
  private wake: (() => void) | null = null;
  private reading: Promise<unknown> | null = null;
  /** Entries claimed from stalled consumers, handed out by the next take. */
  private readonly stragglers: OutboxEntry[] = [];

  constructor(options: RedisOutboxOptions) {
    this.redis = options.redis;
    this.consumer = `${options.instanceId}.${randomEpoch().slice(0, 8)}`;
    this.leaseMs = options.leaseMs ?? 10_000;
    this.pollMs = options.pollMs ?? 250;
    this.log = options.log ?? (() => {});
    this.leases = new ShardLeases({
      redis: this.redis,
      consumer: this.consumer,
      shards: SHARDS,
      leaseMs: this.leaseMs,
      log: this.log,
      hooks: {
        acquired: async (shard) => {
          await this.createGroup(shard);
          setTimeout(() => this.wake?.(), 0);
        },
        quiet: async () => void (await this.reading?.catch(() => {})),
        everyLease: async (tenures) => void (await Promise.all(tenures.filter((t) => t.claimFrom === null).map((t) => this.claimStragglers(t)))),
      },
    });
  }

  async start(): Promise<void> {
    await this.leases.start();
  }

  async append(key: string, event: WebhookEvent): Promise<void> {
    const shard = shardOf(key);
    await this.redis.xadd(outboxKeys.events(shard), "*", "k", key, "e", JSON.stringify(event));
    if (this.leases.current(shard) !== undefined) this.wake?.();
  }

  async take(max: number, waitMs: number): Promise<OutboxEntry[]> {
    let entries = await this.read(max);
    if (entries.length === 0 && waitMs > 0 && !this.closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(waitMs, this.pollMs));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
      });
      this.wake = null;
      entries = await this.read(max);
    }
    return entries;
  }

  holds(entry: OutboxEntry): boolean {
    const [shard, gen] = entry.lane.split("/").map(Number) as [number, number];
    return !this.closed && this.leases.current(shard)?.gen === gen;
  }

  async done(entry: OutboxEntry): Promise<void> {
    const [shard, gen] = entry.lane.split("/").map(Number) as [number, number];
    const stream = outboxKeys.events(shard);
    const replies = await this.redis.multi().xack(stream, GROUP, entry.id).xdel(stream, entry.id).exec();
    const failed = replies?.find(([error]) => error !== null);
    if (replies === null || failed !== undefined) throw failed?.[0] ?? new Error("webhook outbox: XACK/XDEL transaction aborted");
    const tenure = this.leases.tenures.get(shard);
    if (tenure?.gen === gen) tenure.outstanding--;
  }

  async stats(): Promise<OutboxStats> {
    const shards = Array.from({ length: SHARDS }, (_, i) => i);
    const parts = await Promise.all(
      shards.map(async (shard) => {
        const [length, oldest] = await Promise.all([this.redis.xlen(outboxKeys.events(shard)), this.redis.xrange(outboxKeys.events(shard), "-", "+", "COUNT", 1)]);
        const first = oldest[0] as StreamEntry | undefined;
        return { length, oldestAt: first === undefined ? null : parseEvent(first[1])?.at ?? null };
      }),
    );
    const ats = parts.map((p) => p.oldestAt).filter((at): at is number => at !== null);
    return { length: parts.reduce((sum, p) => sum + p.length, 0), oldestAt: ats.length > 0 ? Math.min(...ats) : null };
  }

  /** Shards this process holds now (for tests and logs). */
  get held(): number[] {
    return [...this.leases.tenures.keys()].sort((a, b) => a - b);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    await this.reading?.catch(() => {});
    await this.leases.close();
  }

  /**
   * Entries pending for other consumers of a shard this process holds, idle longer than a lease:
   * read by a holder that had already lost the shard (a stalled process). They are claimed and
   * sent from here (late, so possibly after later events of their key: the price of not losing them).
   */
  private async claimStragglers(tenure: Tenure): Promise<void> {
    const stream = outboxKeys.events(tenure.shard);
    const pending = (await this.redis.xpending(stream, GROUP, "IDLE", this.leaseMs, "-", "+", 100)) as [string, string, number, number][];
    const ids = pending.filter(([, consumer]) => consumer !== this.consumer).map(([id]) => id);
    if (ids.length === 0 || this.leases.tenures.get(tenure.shard) !== tenure) return;
    const claimed = (await this.redis.call("XCLAIM", stream, GROUP, this.consumer, String(this.leaseMs), ...ids)) as (StreamEntry | null)[];
    if (this.leases.tenures.get(tenure.shard) !== tenure) return;
    this.stragglers.push(...this.toEntries(tenure, claimed.filter((e): e is StreamEntry => e !== null)));
    this.wake?.();
  }

  private async createGroup(shard: number): Promise<void> {
    try {
      await this.redis.xgroup("CREATE", outboxKeys.events(shard), GROUP, "0", "MKSTREAM");
    } catch (error) {
      if (!/BUSYGROUP/.test((error as Error).message)) throw error;
    }
  }

  private async read(max: number): Promise<OutboxEntry[]> {
    const tenures = [...this.leases.tenures.values()];
    if (this.closed || tenures.length === 0 || this.redis.status !== "ready") return [];
    const count = Math.max(1, Math.floor(max / tenures.length));
    const reading = Promise.all(tenures.map((t) => this.readShard(t, count)));
    this.reading = reading;
    try {
      const batches = await reading;
      return [...this.stragglers.splice(0), ...batches.flat()];
    } finally {
      if (this.reading === reading) this.reading = null;
    }
  }

  /** The previous holders' unfinished entries first (XAUTOCLAIM), then new ones (XREADGROUP). */
  private async readShard(tenure: Tenure, count: number): Promise<OutboxEntry[]> {
    const stream = outboxKeys.events(tenure.shard);
    let raw: StreamEntry[];
    try {
      if (tenure.claimFrom !== null) {
        const [next, claimed] = (await this.redis.xautoclaim(stream, GROUP, this.consumer, 0, tenure.claimFrom, "COUNT", count)) as [string, StreamEntry[]];
        tenure.claimFrom = next === "0-0" ? null : next;
        raw = claimed;
        if (tenure.claimFrom === null) void this.forgetIdleConsumers(tenure.shard);
      } else {
        const reply = (await this.redis.xreadgroup("GROUP", GROUP, this.consumer, "COUNT", count, "STREAMS", stream, ">")) as [string, StreamEntry[]][] | null;
        raw = reply?.[0]?.[1] ?? [];
      }
    } catch (error) {
      // Redis restarted empty (or the stream was deleted): the group is created again, from 0.
      if (/NOGROUP/.test((error as Error).message)) await this.createGroup(tenure.shard).catch(() => {});
      else throw error;
      return [];
    }
    if (this.leases.tenures.get(tenure.shard) !== tenure) return [];
    return this.toEntries(tenure, raw);
  }

  private toEntries(tenure: Tenure, raw: StreamEntry[]): OutboxEntry[] {
    const entries: OutboxEntry[] = [];
    for (const [id, fields] of raw) {
      const event = parseEvent(fields);
      const key = fieldOf(fields, "k");
      if (event === null || key === null) {
        this.log("error", `webhook outbox: entry ${id} of shard ${tenure.shard} is not an event; removed`);
        void this.redis.multi().xack(outboxKeys.events(tenure.shard), GROUP, id).xdel(outboxKeys.events(tenure.shard), id).exec().catch(() => {});
        continue;
      }
      tenure.outstanding++;
      entries.push({ id, lane: `${tenure.shard}/${tenure.gen}`, key, event, body: fieldOf(fields, "e")! });
    }
    return entries;
  }

  /** Consumers of earlier holders, once their entries are all taken over, are removed from the group. */
  private async forgetIdleConsumers(shard: number): Promise<void> {
    try {
      const consumers = (await this.redis.xinfo("CONSUMERS", outboxKeys.events(shard), GROUP)) as unknown[][];
      for (const info of consumers) {
        const name = String(info[info.indexOf("name") + 1]);
        const pending = Number(info[info.indexOf("pending") + 1]);
        if (name !== this.consumer && pending === 0) await this.redis.xgroup("DELCONSUMER", outboxKeys.events(shard), GROUP, name);
      }
    } catch (error) {
      this.log("warn", `webhook outbox: could not tidy shard ${shard}'s consumers: ${(error as Error).message}`);
    }
  }
}

function fieldOf(fields: string[], name: string): string | null {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]!;
  return null;
}

function parseEvent(fields: string[]): WebhookEvent | null {
  const body = fieldOf(fields, "e");
  if (body === null) return null;
  try {
    const event = JSON.parse(body) as WebhookEvent;
    return typeof event === "object" && event !== null && typeof event.id === "string" && typeof event.at === "number" ? event : null;
  } catch {
    return null;
  }
}
