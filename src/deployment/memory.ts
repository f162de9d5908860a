/** The deployment registry of a single process (no REDIS_URL): reports held in memory with their lease. */
import { sumTopics, type DeploymentRegistry, type InstanceInfo, type TopicCount } from "./registry.ts";

interface Report {
  status: InstanceInfo;
  topics: ReadonlyMap<string, number>;
  expiresAt: number;
}

export class MemoryDeploymentRegistry implements DeploymentRegistry {
  private readonly reports = new Map<string, Report>();

  constructor(
    private readonly leaseMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async report(status: InstanceInfo, topics: ReadonlyMap<string, number>, changed?: ReadonlySet<string> | null): Promise<void> {
    // The caller's map changes after the call (registry.ts): a copy, unless nothing changed since the last one.
    const last = this.reports.get(status.id);
    const kept = last !== undefined && changed?.size === 0 ? last.topics : new Map(topics);
    this.reports.set(status.id, { status: { ...status }, topics: kept, expiresAt: this.now() + this.leaseMs });
  }

  async remove(id: string): Promise<void> {
    this.reports.delete(id);
  }

  async instances(): Promise<InstanceInfo[]> {
    return this.live()
      .map((r) => ({ ...r.status }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async topics(prefix: string, limit: number): Promise<TopicCount[]> {
    return sumTopics(this.live().map((r) => r.topics), prefix, limit);
  }

  async close(): Promise<void> {
    this.reports.clear();
  }

  private live(): Report[] {
    const now = this.now();
    for (const [id, r] of this.reports) if (r.expiresAt <= now) this.reports.delete(id);
    return [...this.reports.values()];
  }
}
