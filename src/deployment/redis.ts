/**
 * The deployment registry in Redis, shared by every process. Per process, two keys that expire
 * with its lease (on Redis's clock, so machines' clocks do not matter): its status (JSON) and a
 * hash topic → local subscribers, both replaced in one MULTI per heartbeat so a reader never sees
 * half a report. An index set lists the ids ever seen; readers drop the ids whose status expired.
 * Every key shares the hash tag `{deploy}` (Redis Cluster: one slot, so one pipeline reads all).
 * Losing these keys (Redis restarted, evicted) costs at most one heartbeat: the next one rewrites
 * them.
 */
import { toSwitchboardError, type RedisClient } from "../redis/connection.ts";
import { sumTopics, type DeploymentRegistry, type InstanceInfo, type TopicCount } from "./registry.ts";

export const deploymentKeys = {
  ids: "sb:{deploy}:ids",
  status: (id: string) => `sb:{deploy}:inst:${id}`,
  topics: (id: string) => `sb:{deploy}:topics:${id}`,
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
  constructor(
    /** A command connection, shared and not closed here. */
    private readonly redis: RedisClient,
    private readonly leaseMs: number,
  ) {}

  /** The id whose last report landed whole or in part (its topics hash is what it wrote), or null. */
  private landed: string | null = null;

  /**
   * Writes only the topics that changed since the last report (HSET / HDEL of those fields) and
   * renews the leases. Rewriting the whole hash on every change cost Redis tens of ms per
   * heartbeat at 10,000 topics (one HSET of every field, blocking every other client), and the
   * process 5–27 ms of its event loop to build and diff the maps. A hash that vanished meanwhile
   * (Redis restarted, evicted), a report that failed, or changes not known are written whole.
   */
  report(status: InstanceInfo, topics: ReadonlyMap<string, number>, changed?: ReadonlySet<string> | null): Promise<void> {
    return guard(async () => {
      const topicsKey = deploymentKeys.topics(status.id);
      const base = () => this.redis.multi().set(deploymentKeys.status(status.id), JSON.stringify(status), "PX", this.leaseMs).sadd(deploymentKeys.ids, status.id);
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
        // The first PEXPIRE says whether the hash was still there; the last one bounds what the
        // changes wrote when it was not (they are then replaced by a whole rewrite below).
        const multi = base().pexpire(topicsKey, this.leaseMs);
        if (set.length > 0) multi.hset(topicsKey, Object.fromEntries(set));
        if (gone.length > 0) multi.hdel(topicsKey, ...gone);
        if (set.length > 0) multi.pexpire(topicsKey, this.leaseMs);
        const [, , renewed] = await exec(multi);
        if (Number(renewed) === 1) {
          this.landed = status.id;
          return;
        }
      }
      const multi = base().del(topicsKey);
      if (topics.size > 0) multi.hset(topicsKey, Object.fromEntries(topics)).pexpire(topicsKey, this.leaseMs);
      await exec(multi);
      this.landed = status.id;
    });
  }

  remove(id: string): Promise<void> {
    if (this.landed === id) this.landed = null;
    return guard(async () => {
      await exec(this.redis.multi().del(deploymentKeys.status(id), deploymentKeys.topics(id)).srem(deploymentKeys.ids, id));
    });
  }

  instances(): Promise<InstanceInfo[]> {
    return guard(async () => (await this.live()).map(([, status]) => status));
  }

  topics(prefix: string, limit: number): Promise<TopicCount[]> {
    return guard(async () => {
      const live = await this.live();
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
  private async live(): Promise<[string, InstanceInfo][]> {
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
