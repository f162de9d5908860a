/**
 * Which webhook outbox shards this process sends (redis-outbox.ts). A shard is sent by the holder
 * of its lease `sb:{wh:<n>}:lease` (lua/lease.lua), renewed every lease/4; the live senders
 * (`sb:{wh}:senders`, lua/senders.lua) each hold about shards ÷ senders, so a newly started
 * process gets its share and a crashed one's shards are taken within leaseMs × 1.25.
 *
 * A process stops treating a shard as its own at 90 % of the lease after the last renewal it
 * *sent*, so it stops sending before Redis lets another process take the shard.
 */
import { readFileSync } from "node:fs";
import type { LogFn, RedisClient } from "../redis/connection.ts";

const lua = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");

export const leaseKeys = {
  lease: (shard: number) => `sb:{wh:${shard}}:lease`,
  senders: "sb:{wh}:senders",
};

type LeaseRedis = RedisClient & LeaseScripts;

interface LeaseScripts {
  sbWebhookLease(lease: string, op: "acquire" | "renew" | "release", consumer: string, leaseMs: number): Promise<number>;
  sbWebhookSenders(senders: string, op: "beat" | "leave", consumer: string, leaseMs: number): Promise<number>;
}

/** This process's hold on one shard, from acquiring its lease to losing or giving it up. */
export interface Tenure {
  shard: number;
  /** Distinguishes successive tenures of one shard by this process. */
  gen: number;
  /** performance.now() when the last successful renewal was sent. */
  renewedAt: number;
  /** Where the takeover of earlier holders' entries goes on; null once it is over. */
  claimFrom: string | null;
  /** Entries taken under this tenure and not done. */
  outstanding: number;
}

export interface ShardLeaseHooks {
  /** A shard was just acquired (before it counts as held). */
  acquired(shard: number): Promise<void>;
  /** Resolves when no read of held shards is running, before idle shards are given up. */
  quiet(): Promise<void>;
  /** About once per lease, with the shards held. */
  everyLease(tenures: Tenure[]): Promise<void>;
}

export interface ShardLeasesOptions {
  redis: RedisClient;
  consumer: string;
  shards: number;
  leaseMs: number;
  log: LogFn;
  hooks: ShardLeaseHooks;
}

export class ShardLeases {
  private readonly redis: LeaseRedis;
  private readonly o: ShardLeasesOptions;
  readonly tenures = new Map<number, Tenure>();
  private gen = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private ticking = false;
  private ticks = 0;
  private closed = false;
  private warned = false;

  constructor(options: ShardLeasesOptions) {
    this.o = options;
    this.redis = options.redis as LeaseRedis;
    const define = (name: string, file: string) => {
      if (!(name in this.redis)) this.redis.defineCommand(name, { numberOfKeys: 1, lua: lua(file) });
    };
    define("sbWebhookLease", "lease");
    define("sbWebhookSenders", "senders");
  }

  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.o.leaseMs / 4)));
  }

  /** The tenure of `shard` when this process holds it now (renewed recently enough). */
  current(shard: number): Tenure | undefined {
    const tenure = this.tenures.get(shard);
    return !this.closed && tenure !== undefined && this.fresh(tenure) ? tenure : undefined;
  }

  /** Gives up every shard and leaves the senders (another process takes them at once). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    while (this.ticking) await Bun.sleep(5);
    const shards = [...this.tenures.keys()];
    this.tenures.clear();
    if (this.redis.status !== "ready") return;
    try {
      await Promise.all(shards.map((shard) => this.redis.sbWebhookLease(leaseKeys.lease(shard), "release", this.o.consumer, this.o.leaseMs)));
      await this.redis.sbWebhookSenders(leaseKeys.senders, "leave", this.o.consumer, this.o.leaseMs);
    } catch (error) {
      this.o.log("warn", `webhook outbox: could not give up its shards: ${(error as Error).message}`);
    }
  }

  private fresh(tenure: Tenure): boolean {
    return performance.now() - tenure.renewedAt < this.o.leaseMs * 0.9;
  }

  /** Heartbeat, renewals, then taking or giving up shards toward an even share. */
  private async tick(): Promise<void> {
    if (this.closed || this.ticking) return;
    this.ticking = true;
    try {
      for (const [shard, tenure] of this.tenures) if (!this.fresh(tenure)) this.tenures.delete(shard);
      if (this.redis.status !== "ready") return;
      const live = await this.redis.sbWebhookSenders(leaseKeys.senders, "beat", this.o.consumer, this.o.leaseMs);
      await Promise.all([...this.tenures.values()].map((t) => this.renew(t)));
      const target = Math.ceil(this.o.shards / Math.max(1, Number(live)));
      if (this.tenures.size < target) await this.acquire(target);
      else if (this.tenures.size > target) await this.releaseIdle(this.tenures.size - target);
      if (++this.ticks % 4 === 0) await this.o.hooks.everyLease([...this.tenures.values()]);
      this.warned = false;
    } catch (error) {
      if (!this.warned) this.o.log("warn", `webhook outbox: lease renewal failed: ${(error as Error).message}`);
      this.warned = true;
    } finally {
      this.ticking = false;
    }
  }

  private async renew(tenure: Tenure): Promise<void> {
    const sentAt = performance.now();
    const held = await this.redis.sbWebhookLease(leaseKeys.lease(tenure.shard), "renew", this.o.consumer, this.o.leaseMs);
    if (Number(held) === 1) tenure.renewedAt = sentAt;
    else this.tenures.delete(tenure.shard);
  }

  private async acquire(target: number): Promise<void> {
    const start = Math.floor(Math.random() * this.o.shards);
    for (let i = 0; i < this.o.shards && this.tenures.size < target && !this.closed; i++) {
      const shard = (start + i) % this.o.shards;
      if (this.tenures.has(shard)) continue;
      const sentAt = performance.now();
      if (Number(await this.redis.sbWebhookLease(leaseKeys.lease(shard), "acquire", this.o.consumer, this.o.leaseMs)) !== 1) continue;
      await this.o.hooks.acquired(shard);
      this.tenures.set(shard, { shard, gen: ++this.gen, renewedAt: sentAt, claimFrom: "0-0", outstanding: 0 });
    }
  }

  /** Gives up surplus shards with nothing taken and not done. */
  private async releaseIdle(surplus: number): Promise<void> {
    // Not while a read runs: entries it took from a released shard would sit in this
    // consumer's pending list, after the next holder's takeover pass.
    await this.o.hooks.quiet();
    const idle = [...this.tenures.values()].filter((t) => t.outstanding === 0).slice(0, surplus);
    for (const tenure of idle) this.tenures.delete(tenure.shard);
    await Promise.all(idle.map((t) => this.redis.sbWebhookLease(leaseKeys.lease(t.shard), "release", this.o.consumer, this.o.leaseMs)));
  }
}
