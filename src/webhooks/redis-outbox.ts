/**
 * RedisOutbox: the webhook outbox of a deployment over Redis, on Streams with a consumer group.
 *
 * - Ordering keys are hashed onto `shards` (16) streams `sb:{wh:<n>}:events`; an event is one
 *   XADD (fields `k` = ordering key, `e` = the body). Each stream has one consumer group.
 * - Each shard is sent by one process at a time: the holder of its lease `sb:{wh:<n>}:lease`
 *   (lua/lease.lua), renewed every lease/4. Processes share the shards: each holds about
 *   shards ÷ live senders (`sb:{wh}:senders`, lua/senders.lua) and gives up its surplus when
 *   another process starts. So two processes never send one key's events at once, and a key's
 *   events come out of one stream in append order.
 * - A new holder first takes over what the previous holder had read but not finished (its
 *   pending entries, XAUTOCLAIM), oldest first, then reads new entries (XREADGROUP `>`).
 *   A crashed holder's lease runs out after `leaseMs` (default 10 s): its shards are taken within
 *   leaseMs × 1.25 of its last renewal.
 * - `done` is XACK + XDEL: a stream holds exactly the events not yet delivered or given up.
 */
import type Redis from "ioredis";
import { readFileSync } from "node:fs";
import type { LogFn } from "../redis/connection.ts";
import { randomEpoch } from "../redis/connection.ts";
import type { WebhookEvent } from "./events.ts";
import type { Outbox, OutboxEntry, OutboxStats } from "./outbox.ts";

const lua = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");

export const SHARDS = 16;
const GROUP = "senders";

export const outboxKeys = {
  events: (shard: number) => `sb:{wh:${shard}}:events`,
  lease: (shard: number) => `sb:{wh:${shard}}:lease`,
  senders: "sb:{wh}:senders",
};

/** The shard of an ordering key (FNV-1a), the same on every machine. */
export function shardOf(key: string, shards = SHARDS): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}

interface OutboxRedis extends Redis {
  sbWebhookLease(lease: string, op: "acquire" | "renew" | "release", consumer: string, leaseMs: number): Promise<number>;
  sbWebhookSenders(senders: string, op: "beat" | "leave", consumer: string, leaseMs: number): Promise<number>;
}

/** This process's hold on one shard. */
interface Tenure {
  shard: number;
  gen: number;
  /** performance.now() when the last successful renewal was sent. */
  renewedAt: number;
  /** Where XAUTOCLAIM goes on; null once the previous holders' entries are all taken. */
  claimFrom: string | null;
  /** Entries taken under this tenure and not done. */
  outstanding: number;
}

type StreamEntry = [id: string, fields: string[]];

export interface RedisOutboxOptions {
  /** A command connection (createConnection); shared, not closed here. */
  redis: Redis;
  instanceId: string;
  /** Default 10 000. */
  leaseMs?: number;
  /** How often held shards are read for entries other processes appended. Default 250. */
  pollMs?: number;
  log?: LogFn;
}

export class RedisOutbox implements Outbox {
  private readonly redis: OutboxRedis;
  /** The consumer name: one per process incarnation. */
  readonly consumer: string;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly log: LogFn;
  private readonly tenures = new Map<number, Tenure>();
  private gen = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private ticking = false;
  private closed = false;
  private warned = false;
  private wake: (() => void) | null = null;

  constructor(options: RedisOutboxOptions) {
    this.redis = options.redis as OutboxRedis;
    this.consumer = `${options.instanceId}.${randomEpoch().slice(0, 8)}`;
    this.leaseMs = options.leaseMs ?? 10_000;
    this.pollMs = options.pollMs ?? 250;
    this.log = options.log ?? (() => {});
    const define = (name: string, file: string) => {
      if (!(name in this.redis)) this.redis.defineCommand(name, { numberOfKeys: 1, lua: lua(file) });
    };
    define("sbWebhookLease", "lease");
    define("sbWebhookSenders", "senders");
  }

  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.leaseMs / 4)));
  }

  async append(key: string, event: WebhookEvent): Promise<void> {
    const shard = shardOf(key);
    await this.redis.xadd(outboxKeys.events(shard), "*", "k", key, "e", JSON.stringify(event));
    if (this.tenures.has(shard)) this.wake?.();
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
    const tenure = this.tenures.get(shard);
    return !this.closed && tenure !== undefined && tenure.gen === gen && this.fresh(tenure);
  }

  async done(entry: OutboxEntry): Promise<void> {
    const [shard, gen] = entry.lane.split("/").map(Number) as [number, number];
    const stream = outboxKeys.events(shard);
    const replies = await this.redis.multi().xack(stream, GROUP, entry.id).xdel(stream, entry.id).exec();
    const failed = replies?.find(([error]) => error !== null);
    if (replies === null || failed !== undefined) throw failed?.[0] ?? new Error("webhook outbox: XACK/XDEL transaction aborted");
    const tenure = this.tenures.get(shard);
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
    return [...this.tenures.keys()].sort((a, b) => a - b);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.wake?.();
    while (this.ticking) await Bun.sleep(5);
    if (this.redis.status !== "ready") return;
    try {
      await Promise.all([...this.tenures.keys()].map((shard) => this.redis.sbWebhookLease(outboxKeys.lease(shard), "release", this.consumer, this.leaseMs)));
      await this.redis.sbWebhookSenders(outboxKeys.senders, "leave", this.consumer, this.leaseMs);
    } catch (error) {
      this.log("warn", `webhook outbox: could not give up its shards: ${(error as Error).message}`);
    }
    this.tenures.clear();
  }

  private fresh(tenure: Tenure): boolean {
    // Renewals are timed from when they were sent, and a margin is kept: this process stops
    // sending before Redis lets another process take the shard.
    return performance.now() - tenure.renewedAt < this.leaseMs * 0.9;
  }

  /** Heartbeat, lease renewals, and taking or giving up shards toward an even share. */
  private async tick(): Promise<void> {
    if (this.closed || this.ticking) return;
    this.ticking = true;
    try {
      for (const [shard, tenure] of this.tenures) if (!this.fresh(tenure)) this.tenures.delete(shard);
      if (this.redis.status !== "ready") return;
      const live = await this.redis.sbWebhookSenders(outboxKeys.senders, "beat", this.consumer, this.leaseMs);
      await Promise.all([...this.tenures.values()].map((t) => this.renew(t)));
      const target = Math.ceil(SHARDS / Math.max(1, Number(live)));
      if (this.tenures.size < target) await this.acquire(target);
      else if (this.tenures.size > target) await this.releaseIdle(this.tenures.size - target);
      this.warned = false;
    } catch (error) {
      if (!this.warned) this.log("warn", `webhook outbox: lease renewal failed: ${(error as Error).message}`);
      this.warned = true;
    } finally {
      this.ticking = false;
    }
  }

  private async renew(tenure: Tenure): Promise<void> {
    const sentAt = performance.now();
    const held = await this.redis.sbWebhookLease(outboxKeys.lease(tenure.shard), "renew", this.consumer, this.leaseMs);
    if (Number(held) === 1) tenure.renewedAt = sentAt;
    else this.tenures.delete(tenure.shard);
  }

  private async acquire(target: number): Promise<void> {
    const start = Math.floor(Math.random() * SHARDS);
    for (let i = 0; i < SHARDS && this.tenures.size < target && !this.closed; i++) {
      const shard = (start + i) % SHARDS;
      if (this.tenures.has(shard)) continue;
      const sentAt = performance.now();
      if (Number(await this.redis.sbWebhookLease(outboxKeys.lease(shard), "acquire", this.consumer, this.leaseMs)) !== 1) continue;
      await this.createGroup(shard);
      this.tenures.set(shard, { shard, gen: ++this.gen, renewedAt: sentAt, claimFrom: "0-0", outstanding: 0 });
      this.wake?.();
    }
  }

  /** Gives up surplus shards with nothing taken and not done, so that a newly started process gets its share. */
  private async releaseIdle(surplus: number): Promise<void> {
    const idle = [...this.tenures.values()].filter((t) => t.outstanding === 0).slice(0, surplus);
    for (const tenure of idle) this.tenures.delete(tenure.shard);
    await Promise.all(idle.map((t) => this.redis.sbWebhookLease(outboxKeys.lease(t.shard), "release", this.consumer, this.leaseMs)));
  }

  private async createGroup(shard: number): Promise<void> {
    try {
      await this.redis.xgroup("CREATE", outboxKeys.events(shard), GROUP, "0", "MKSTREAM");
    } catch (error) {
      if (!/BUSYGROUP/.test((error as Error).message)) throw error;
    }
  }

  private async read(max: number): Promise<OutboxEntry[]> {
    if (this.closed || this.tenures.size === 0 || this.redis.status !== "ready") return [];
    const count = Math.max(1, Math.floor(max / this.tenures.size));
    const batches = await Promise.all([...this.tenures.values()].map((t) => this.readShard(t, count)));
    return batches.flat();
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
    if (this.tenures.get(tenure.shard) !== tenure) return [];
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
