/**
 * The deployment registry (SPEC §6 `/api/topics`, `/api/info`): every process of the deployment
 * reports itself and its topics' local subscriber counts every heartbeat; the registry answers
 * with every live process and each topic's subscribers summed over them. A process that stops
 * reporting (crashed, partitioned) is gone once its lease runs out. Readers may lag the truth by
 * up to one heartbeat plus one lease (the SPEC allows 5 s).
 *
 * Implementations: MemoryDeploymentRegistry (one process), RedisDeploymentRegistry (every process
 * on one Redis). Both pass test/suites/deployment.suite.ts.
 */
import type { InstanceInfo } from "../protocol/api.ts";

export type { InstanceInfo };

export interface TopicCount {
  topic: string;
  /** Sockets subscribed to the topic, summed over every live process. */
  subscribers: number;
}

/** Every live process, by id, as a report read them; null when a report failed. */
export type LiveListener = (live: InstanceInfo[] | null) => void;

export interface DeploymentRegistry {
  /**
   * Replaces this process's report: its status and, per topic it has local subscribers on, how
   * many sockets. The report lives `leaseMs` unless renewed by the next one. `topics` is the
   * process's live map (the hub changes it in place): read it during the call, never keep it.
   * `changed` lists the topics whose counts may differ from the previous report of this process
   * (every topic not listed has the count that report had); absent or null: unknown. An
   * implementation may write only those when the previous report landed.
   */
  report(status: InstanceInfo, topics: ReadonlyMap<string, number>, changed?: ReadonlySet<string> | null): Promise<void>;
  /**
   * Asks every later report to read the live processes in the same call and hand them to
   * `listener` (null when the report failed): a reader of the registry every second
   * (auth/fence-windows.ts) then needs no read of its own. Absent: reports read nothing.
   */
  watchLive?(listener: LiveListener): void;
  /** Forgets a process at once (a clean shutdown). */
  remove(id: string): Promise<void>;
  /** Every live process, ordered by id. */
  instances(): Promise<InstanceInfo[]>;
  /**
   * Topics with at least one subscriber somewhere whose name starts with `prefix`, ordered by
   * name, at most `limit`.
   */
  topics(prefix: string, limit: number): Promise<TopicCount[]>;
  close(): Promise<void>;
}

/** Sums per-process topic counts, keeps those starting with `prefix`, sorts by name, cuts at `limit`. */
export function sumTopics(reports: Iterable<ReadonlyMap<string, number>>, prefix: string, limit: number): TopicCount[] {
  const sums = new Map<string, number>();
  for (const topics of reports) {
    for (const [topic, count] of topics) {
      if (count > 0 && topic.startsWith(prefix)) sums.set(topic, (sums.get(topic) ?? 0) + count);
    }
  }
  return [...sums.keys()]
    .sort()
    .slice(0, limit)
    .map((topic) => ({ topic, subscribers: sums.get(topic)! }));
}
