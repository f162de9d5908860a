/**
 * The deployment registry in Redis, shared by every process. Per process, two keys that expire
 * with its lease (on Redis's clock, so machines' clocks do not matter): its status (JSON) and a
 * hash topic → local subscribers, both written by one script call per heartbeat (lua/report.lua)
 * so a reader never sees half a report. An index set lists the ids ever seen; readers drop the ids
 * whose status expired. Every key shares the hash tag `{deploy}` (Redis Cluster: one slot, so one
 * pipeline reads all and one script call writes a report). Losing these keys (Redis restarted,
 * evicted) costs at most one heartbeat: the next one rewrites them.
 *
 * A heartbeat was a MULTI of five commands or more (MULTI, SET, SADD, DEL or PEXPIRE, EXEC) and the
 * fence windows' read two more (SMEMBERS, MGET) every second: one script call now does both, when
 * someone listens for the live list (`watchLive`). The script is an ioredis `defineCommand`: its
 * first call on each (re)connection goes as EVAL (the text, which loads it), the next ones as
 * EVALSHA, and one that meets NOSCRIPT (a SCRIPT FLUSH) is sent again as EVAL. Its order rule
 * (ScriptRunner's, broker/redis-scripts.ts) is not needed here: reports are made one at a time
 * (heartbeat.ts), so no later one can overtake a retried one.
 */
import { readFileSync } from "node:fs";
import { toSwitchboardError, type RedisClient } from "../redis/connection.ts";
import { sumTopics, type DeploymentRegistry, type InstanceInfo, type LiveListener, type TopicCount } from "./registry.ts";

export const deploymentKeys = {
  ids: "sb:{deploy}:ids",
  status: (id: string) => `sb:{deploy}:inst:${id}`,
  topics: (id: string) => `sb:{deploy}:topics:${id}`,
};

const REPORT = readFileSync(new URL("./lua/report.lua", import.meta.url), "utf8");

type ReportRedis = RedisClient & {
  sbDeployReport(ids: string, status: string, topics: string, ...args: (string | number)[]): Promise<[number, ...string[]]>;
};

async function guard<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw toSwitchboardError(error, "deployment registry");
  }
}

/** Runs a MULTI or pipeline and returns its replies, throwing the first command error. */
async function exec(batch: ReturnType<RedisClient["multi"]>): Promise<unknown[]> {
  const replies = await batch.exec();
  if (replies === null) throw new Error("transaction aborted");
  for (const [error] of replies) if (error) throw error;
  return replies.map(([, value]) => value);
}

export class RedisDeploymentRegistry implements DeploymentRegistry {
  private readonly redis: ReportRedis;
  /** Told the live processes read by each report (or null when one failed); null: nobody listens, reports read nothing. */
  private live: LiveListener | null = null;

  constructor(
    /** A command connection, shared and not closed here. */
    redis: RedisClient,
    private readonly leaseMs: number,
  ) {
    this.redis = redis as ReportRedis;
    if (!("sbDeployReport" in redis)) redis.defineCommand("sbDeployReport", { numberOfKeys: 3, lua: REPORT });
  }

  /** The id whose last report landed whole or in part (its topics hash is what it wrote), or null. */
  private landed: string | null = null;

  watchLive(listener: LiveListener): void {
    this.live = listener;
  }

  /**
   * Writes only the topics that changed since the last report (HSET / HDEL of those fields) and
   * renews the leases. Rewriting the whole hash on every change cost Redis tens of ms per
   * heartbeat at 10,000 topics (one HSET of every field, blocking every other client), and the
   * process 5–27 ms of its event loop to build and diff the maps. A hash that vanished meanwhile
   * (Redis restarted, evicted), a report that failed, or changes not known are written whole.
   */
  async report(status: InstanceInfo, topics: ReadonlyMap<string, number>, changed?: ReadonlySet<string> | null): Promise<void> {
    try {
      const statuses = await guard(() => this.write(status, topics, changed));
      if (this.live !== null) this.live(statuses.map((value) => JSON.parse(value) as InstanceInfo).sort(byId));
    } catch (error) {
      this.live?.(null);
      throw error;
    }
  }

  /** The report in one script call (two when the hash was gone): the live statuses it read back. */
  private async write(status: InstanceInfo, topics: ReadonlyMap<string, number>, changed?: ReadonlySet<string> | null): Promise<string[]> {
    const call = (mode: "whole" | "changes", set: Iterable<[string, number]>, gone: string[] = []) => {
      const args: (string | number)[] = [JSON.stringify(status), this.leaseMs, status.id, mode, this.live === null ? "0" : "1", 0];
      for (const [topic, count] of set) args.push(topic, count);
      args[5] = (args.length - 6) / 2;
      for (const topic of gone) args.push(topic);
      return this.redis.sbDeployReport(deploymentKeys.ids, deploymentKeys.status(status.id), deploymentKeys.topics(status.id), ...args);
    };
    const incremental = topics.size > 0 && changed != null && this.landed === status.id;
    // Until this report lands, the hash is not known to match what this process wrote.
    this.landed = null;
    if (incremental) {
      const set: [string, number][] = [];
      const gone: string[] = [];
      for (const topic of changed) {
        const count = topics.get(topic);
        if (count === undefined) gone.push(topic);
        else set.push([topic, count]);
      }
      const [written, ...statuses] = await call("changes", set, gone);
      if (Number(written) === 1) {
        this.landed = status.id;
        return statuses;
      }
    }
    const [, ...statuses] = await call("whole", topics);
    this.landed = status.id;
    return statuses;
  }

  remove(id: string): Promise<void> {
    if (this.landed === id) this.landed = null;
    return guard(async () => {
      await exec(this.redis.multi().del(deploymentKeys.status(id), deploymentKeys.topics(id)).srem(deploymentKeys.ids, id));
    });
  }

  instances(): Promise<InstanceInfo[]> {
    return guard(async () => (await this.liveReports()).map(([, status]) => status));
  }

  topics(prefix: string, limit: number): Promise<TopicCount[]> {
    return guard(async () => {
      const live = await this.liveReports();
      if (live.length === 0) return [];
      const pipeline = this.redis.pipeline();
      for (const [id] of live) pipeline.hgetall(deploymentKeys.topics(id));
      const hashes = (await exec(pipeline)) as Record<string, string>[];
      return sumTopics(
        hashes.map((hash) => new Map(Object.entries(hash).map(([topic, n]) => [topic, Number(n)]))),
        prefix,
        limit,
      );
    });
  }

  async close(): Promise<void> {}

  /** Live processes as [id, status], by id; ids whose status expired are dropped from the index. */
  private async liveReports(): Promise<[string, InstanceInfo][]> {
    const ids = ((await this.redis.smembers(deploymentKeys.ids)) as string[]).sort();
    if (ids.length === 0) return [];
    const values = (await this.redis.mget(...ids.map(deploymentKeys.status))) as (string | null)[];
    // A process that reports between the MGET and the SREM is re-added by its next heartbeat.
    const dead = ids.filter((_, i) => values[i] === null);
    if (dead.length > 0) await this.redis.srem(deploymentKeys.ids, ...dead);
    const live: [string, InstanceInfo][] = [];
    ids.forEach((id, i) => {
      const value = values[i];
      if (value !== null && value !== undefined) live.push([id, JSON.parse(value) as InstanceInfo]);
    });
    return live;
  }
}

const byId = (a: InstanceInfo, b: InstanceInfo): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
