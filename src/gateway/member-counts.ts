/**
 * Local members per topic, for the deployment registry's report, kept as members join and leave
 * instead of built each heartbeat. With 10,000 topics joining and leaving (a subscribe phase, rooms
 * that come and go), building the map and diffing it against the last report blocked the event
 * loop 5–27 ms once a second per process (bench/README.md, round eight). Now the report costs
 * what changed since the last one.
 */
export class MemberCounts {
  private readonly counts = new Map<string, number>();
  /** Topics whose count changed since the last `takeChanges`, or null once too many to list. */
  private changed: Set<string> | null = new Set();

  /** Records a topic's count now (0: no local member, the topic leaves the map). */
  set(topic: string, members: number): void {
    if ((this.counts.get(topic) ?? 0) === members) return;
    if (members > 0) this.counts.set(topic, members);
    else this.counts.delete(topic);
    if (this.changed === null) return;
    this.changed.add(topic);
    // Nobody took the changes for a long while (no heartbeat running): stop listing them, the
    // next report is then a whole one. Keeps this set bounded however many topics come and go.
    if (this.changed.size > Math.max(1024, 2 * this.counts.size)) this.changed = null;
  }

  /** The counts now: the same map, changed in place; read it, do not keep it. */
  get live(): ReadonlyMap<string, number> {
    return this.counts;
  }

  /**
   * The topics whose counts changed since the last call (each topic once; a count that came back
   * to its old value may be listed too), then starts a new list. Null: unknown, report whole.
   */
  takeChanges(): ReadonlySet<string> | null {
    const changed = this.changed;
    this.changed = new Set();
    return changed;
  }
}
