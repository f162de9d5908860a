/**
 * The presence ledger's two sets of (socket, topic) pairs: wanted (listed or being listed) and
 * confirmed (known to be written). Once the writes have landed they hold the same pairs, so they
 * are kept as `wanted` and the two differences, which are empty then: an idle socket's pair is one
 * entry, not two (bench/README.md, idle memory). The answers are those of two plain sets
 * (presence-pairs.test.ts checks them against two Sets).
 */
import { SmallSet } from "./small-set.ts";

export class PresencePairs<M> {
  private readonly wanted = new Pairs<M>();
  /** Wanted and not known to be written: a join in flight, or failing. */
  private readonly unconfirmed = new Pairs<M>();
  /** Known to be written and no longer wanted: a leave in flight, or failing. */
  private readonly stale = new Pairs<M>();

  isWanted(member: M, topic: string): boolean {
    return this.wanted.has(member, topic);
  }

  want(member: M, topic: string): void {
    if (this.wanted.has(member, topic)) return;
    this.wanted.add(member, topic);
    if (!this.stale.delete(member, topic)) this.unconfirmed.add(member, topic);
  }

  /** True when it was wanted. */
  unwant(member: M, topic: string): boolean {
    if (!this.wanted.delete(member, topic)) return false;
    if (!this.unconfirmed.delete(member, topic)) this.stale.add(member, topic);
    return true;
  }

  isConfirmed(member: M, topic: string): boolean {
    return this.wanted.has(member, topic) ? !this.unconfirmed.has(member, topic) : this.stale.has(member, topic);
  }

  confirm(member: M, topic: string): void {
    if (this.wanted.has(member, topic)) this.unconfirmed.delete(member, topic);
    else this.stale.add(member, topic);
  }

  unconfirm(member: M, topic: string): void {
    if (this.wanted.has(member, topic)) this.unconfirmed.add(member, topic);
    else this.stale.delete(member, topic);
  }
}

/**
 * (socket, topic) pairs, by topic: the pairs every idle socket holds cost no string of their own
 * (`id topic` was one per socket and topic; bench/README.md, idle memory).
 */
class Pairs<M> {
  private readonly byTopic = new Map<string, SmallSet<M>>();

  has(member: M, topic: string): boolean {
    return this.byTopic.get(topic)?.has(member) ?? false;
  }

  add(member: M, topic: string): void {
    let members = this.byTopic.get(topic);
    if (members === undefined) this.byTopic.set(topic, (members = new SmallSet()));
    members.add(member);
  }

  /** True when it was there. */
  delete(member: M, topic: string): boolean {
    const members = this.byTopic.get(topic);
    if (members === undefined || !members.delete(member)) return false;
    if (members.size === 0) this.byTopic.delete(topic);
    return true;
  }
}
