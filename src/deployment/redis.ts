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

function sameCounts(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [topic, count] of b) if (a.get(topic) !== count) return false;
  return true;
}

export class RedisDeploymentRegistry implements DeploymentRegistry {
  constructor(
    /** A command connection, shared and not closed here. */
    private readonly redis: RedisClient,
    private readonly leaseMs: number,
  ) {}

  /** The topics of this process's last full report, to skip rewriting an unchanged hash. */
  private lastTopics: { id: string; topics: ReadonlyMap<string, number> } | null = null;

  /**
   * Rewrites the topics hash only when the counts changed since the last report; otherwise only
   * the leases are renewed. A hash that vanished meanwhile (Redis restarted) is written again.
   */
  report(status: InstanceInfo, topics: ReadonlyMap<string, number>): Promise<void> {
    return guard(async () => {
      const topicsKey = deploymentKeys.topics(status.id);
      const base = () => this.redis.multi().set(deploymentKeys.status(status.id), JSON.stringify(status), "PX", this.leaseMs).sadd(deploymentKeys.ids, status.id);
      const last = this.lastTopics;
      // The same map is the same counts (registry.ts): no walk over every topic each second.
      if (topics.size > 0 && last !== null && last.id === status.id && (last.topics === topics || sameCounts(last.topics, topics))) {
        const [, , renewed] = await exec(base().pexpire(topicsKey, this.leaseMs));
        if (Number(renewed) === 1) return;
      }
      const multi = base().del(topicsKey);
      if (topics.size > 0) multi.hset(topicsKey, Object.fromEntries(topics)).pexpire(topicsKey, this.leaseMs);
      await exec(multi);
      this.lastTopics = { id: status.id, topics };
    });
  }

  remove(id: string): Promise<void> {
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
