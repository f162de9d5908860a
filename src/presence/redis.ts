/**
 * RedisPresence: who is in a topic across every machine.
 *
 * - One entry per connection in the topic's hash, tagged with the instance that holds it, and a
 *   per-user connection count beside it; lua/join.lua and lua/leave.lua change both atomically,
 *   so `join`/`leave` report a user's first and last connection once across all machines.
 * - Each process holds a lease (a deadline on Redis' clock in a sorted set), renewed every
 *   `heartbeatMs`. Every process sweeps every `sweepMs`: the entries of an instance whose lease
 *   ran out are removed by lua/sweep.lua, and the process whose sweep removed a user's last
 *   connection reports it through `onExpired`, so each leave is reported exactly once. With the
 *   defaults (lease 15 s, sweep every 5 s) a crashed process's members are gone within ~20 s.
 * - A process that finds its lease missing (Redis restarted empty, or it was swept while
 *   stalled) re-adds its own entries.
 */
import { readFileSync } from "node:fs";
import type { PresenceMember, User } from "../protocol/frames.ts";
import type { Presence, PresenceEvents } from "./presence.ts";
import { randomEpoch, toSwitchboardError, unavailable } from "../redis/connection.ts";
import type { LogFn, RedisClient } from "../redis/connection.ts";

const lua = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");

export const presenceKeys = {
  conns: (topic: string) => `sb:{p:${topic}}:conns`,
  users: (topic: string) => `sb:{p:${topic}}:users`,
  instances: "sb:{presence}:instances",
  topicsOf: (instance: string) => `sb:{presence}:inst:${instance}:topics`,
};

type PresenceRedis = RedisClient & PresenceScripts;

interface PresenceScripts {
  sbPresenceJoin(conns: string, users: string, connectionId: string, userId: string, entry: string): Promise<number>;
  sbPresenceLeave(conns: string, users: string, connectionId: string, userId: string): Promise<number>;
  sbPresenceSweep(conns: string, users: string, instance: string): Promise<string[]>;
  sbPresenceLease(instances: string, instance: string, leaseMs: number): Promise<number>;
  sbPresenceExpired(instances: string, topicsOf: string, op: "list" | "forget", arg: string | number): Promise<unknown>;
}

export interface RedisPresenceOptions {
  /** The data connection (one Redis or a cluster, see createDataConnection); shared, not closed by this class. */
  redis: RedisClient;
  instanceId: string;
  /** How long a process's entries outlive its last heartbeat. Default 15 000. */
  leaseMs?: number;
  /** Default leaseMs / 3. */
  heartbeatMs?: number;
  /** How often this process looks for expired instances. Default leaseMs / 3. */
  sweepMs?: number;
  log?: LogFn;
}

export class RedisPresence implements Presence {
  private readonly redis: PresenceRedis;
  private readonly instance: string;
  private readonly leaseMs: number;
  private readonly heartbeatMs: number;
  private readonly sweepMs: number;
  private readonly log: LogFn;
  private events: PresenceEvents = { onExpired() {} };
  /** This process's own entries: topic → connection id → user. */
  private readonly local = new Map<string, Map<string, User>>();
  private timers: ReturnType<typeof setInterval>[] = [];
  private sweeping = false;
  private closed = false;
  private readonly onReady = () => void this.heartbeat();

  constructor(options: RedisPresenceOptions) {
    this.redis = options.redis as PresenceRedis;
    // One lease per incarnation: a process restarted under the same INSTANCE_ID (a Fly machine,
    // a supervised worker) must not adopt, and so keep alive, the entries its crashed self left.
    this.instance = `${options.instanceId}.${randomEpoch().slice(0, 8)}`;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.heartbeatMs = options.heartbeatMs ?? Math.max(100, Math.floor(this.leaseMs / 3));
    this.sweepMs = options.sweepMs ?? Math.max(100, Math.floor(this.leaseMs / 3));
    this.log = options.log ?? (() => {});
    const define = (name: string, file: string, keys: number) => {
      if (!(name in this.redis)) this.redis.defineCommand(name, { numberOfKeys: keys, lua: lua(file) });
    };
    define("sbPresenceJoin", "join", 2);
    define("sbPresenceLeave", "leave", 2);
    define("sbPresenceSweep", "sweep", 2);
    define("sbPresenceLease", "lease", 1);
    define("sbPresenceExpired", "expired", 2);
  }

  async start(events: PresenceEvents): Promise<void> {
    this.events = events;
    await this.heartbeat();
    this.redis.on("ready", this.onReady);
    this.timers.push(setInterval(() => void this.heartbeat(), this.heartbeatMs));
    // Processes started together should not all sweep at the same instant.
    const jitter = Math.floor(Math.random() * Math.min(1000, this.sweepMs / 2));
    const first = setTimeout(() => {
      if (this.closed) return;
      this.timers.push(setInterval(() => void this.sweep(), this.sweepMs));
    }, jitter);
    this.timers.push(first as unknown as ReturnType<typeof setInterval>);
  }

  async join(topic: string, connectionId: string, user: User): Promise<boolean> {
    if (this.closed || this.redis.status !== "ready") throw unavailable("presence");
    let conns = this.local.get(topic);
    if (conns === undefined) this.local.set(topic, (conns = new Map()));
    conns.set(connectionId, user);
    try {
      await this.redis.sadd(presenceKeys.topicsOf(this.instance), topic);
      const joined = await this.redis.sbPresenceJoin(
        presenceKeys.conns(topic),
        presenceKeys.users(topic),
        connectionId,
        user.id,
        `${this.instance}\n${JSON.stringify({ id: user.id, name: user.name })}`,
      );
      return Number(joined) === 1;
    } catch (error) {
      throw toSwitchboardError(error, "presence");
    }
  }

  async leave(topic: string, connectionId: string, user: User): Promise<boolean> {
    const conns = this.local.get(topic);
    conns?.delete(connectionId);
    const topicEmpty = conns !== undefined && conns.size === 0;
    if (topicEmpty) this.local.delete(topic);
    if (this.closed || this.redis.status !== "ready") throw unavailable("presence");
    try {
      const left = await this.redis.sbPresenceLeave(presenceKeys.conns(topic), presenceKeys.users(topic), connectionId, user.id);
      if (topicEmpty && !this.local.has(topic)) await this.redis.srem(presenceKeys.topicsOf(this.instance), topic);
      return Number(left) === 1;
    } catch (error) {
      throw toSwitchboardError(error, "presence");
    }
  }

  async members(topic: string): Promise<PresenceMember[]> {
    if (this.redis.status !== "ready") throw unavailable("presence");
    let entries: Record<string, string>;
    try {
      entries = await this.redis.hgetall(presenceKeys.conns(topic));
    } catch (error) {
      throw toSwitchboardError(error, "presence");
    }
    const byUser = new Map<string, PresenceMember>();
    for (const value of Object.values(entries)) {
      const user = JSON.parse(value.slice(value.indexOf("\n") + 1)) as User;
      const member = byUser.get(user.id);
      if (member === undefined) byUser.set(user.id, { user, connections: 1 });
      else member.connections++;
    }
    return [...byUser.values()];
  }

  /**
   * Removes this process's entries and lease, and stops the timers. Users whose last connection
   * goes with them (a socket whose own leave never completed) are reported through `onExpired`,
   * so the other processes' subscribers still hear the leave.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.redis.off("ready", this.onReady);
    if (this.redis.status !== "ready") return;
    try {
      await this.removeInstance(this.instance);
      await this.redis.zrem(presenceKeys.instances, this.instance);
      await this.redis.del(presenceKeys.topicsOf(this.instance));
    } catch (error) {
      this.log("warn", `presence: could not remove this process's entries: ${(error as Error).message}`);
    }
    this.local.clear();
  }

  /** Renews the lease; when it was missing, re-adds this process's entries. */
  private async heartbeat(): Promise<void> {
    if (this.closed || this.redis.status !== "ready") return;
    try {
      const added = await this.redis.sbPresenceLease(presenceKeys.instances, this.instance, this.leaseMs);
      if (Number(added) === 1 && this.local.size > 0) await this.reassert();
    } catch (error) {
      this.log("warn", `presence heartbeat failed: ${(error as Error).message}`);
    }
  }

  private async reassert(): Promise<void> {
    this.log("warn", "presence lease was missing: re-adding this process's entries");
    for (const [topic, conns] of this.local) {
      await this.redis.sadd(presenceKeys.topicsOf(this.instance), topic);
      for (const [connectionId, user] of conns) {
        const entry = `${this.instance}\n${JSON.stringify({ id: user.id, name: user.name })}`;
        await this.redis.sbPresenceJoin(presenceKeys.conns(topic), presenceKeys.users(topic), connectionId, user.id, entry);
      }
    }
  }

  /** Removes the entries of every instance whose lease ran out, reporting the users that left. */
  private async sweep(): Promise<void> {
    if (this.closed || this.sweeping || this.redis.status !== "ready") return;
    this.sweeping = true;
    try {
      const expired = (await this.redis.sbPresenceExpired(presenceKeys.instances, presenceKeys.topicsOf("-"), "list", 20)) as string[];
      for (const instance of expired) {
        if (instance === this.instance || this.closed) continue;
        const removed = await this.removeInstance(instance);
        await this.redis.sbPresenceExpired(presenceKeys.instances, presenceKeys.topicsOf(instance), "forget", instance);
        if (removed > 0) this.log("info", `presence: instance ${instance} stopped renewing its lease; ${removed} users left`);
      }
    } catch (error) {
      this.log("warn", `presence sweep failed: ${(error as Error).message}`);
    } finally {
      this.sweeping = false;
    }
  }

  /** Sweeps one instance out of each of its topics, reporting each user that left; returns how many. */
  private async removeInstance(instance: string): Promise<number> {
    const topics = await this.redis.smembers(presenceKeys.topicsOf(instance));
    let left = 0;
    for (const topic of topics) {
      const users = await this.redis.sbPresenceSweep(presenceKeys.conns(topic), presenceKeys.users(topic), instance);
      for (const json of users) {
        left++;
        try {
          this.events.onExpired(topic, JSON.parse(json) as User);
        } catch (error) {
          this.log("error", `presence onExpired handler threw: ${(error as Error).message}`);
        }
      }
    }
    return left;
  }
}
