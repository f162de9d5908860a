/**
 * The presence write ledger: which sockets this process has listed in which topics' presence,
 * the writes in flight, and the retries of writes that failed. It keeps the promises SPEC §3
 * makes of presence across a broker outage:
 * - a leave waits for its socket's join in flight, so there is never a `presence.leave` without
 *   the `presence.join` before it, and no ghost member left by a join that landed after a leave;
 * - a failed write is tried again until it lands, as whatever the socket wants by then (still
 *   subscribed and open → join, else leave): this process renews its lease, so an entry it
 *   wrote would never expire by itself;
 * - a join or leave is announced (`presence.join` / `presence.leave`) once, when it changed the
 *   user's membership; one retry at a time per socket and topic, and a leave whose entry was
 *   never known to be written is not announced (a join that failed for good announced nothing).
 */
import type { Presence } from "../presence/presence.ts";
import type { User } from "../protocol/frames.ts";
import type { Logger } from "../log.ts";
import { errorFields } from "../log.ts";
import { PresencePairs } from "./presence-pairs.ts";

/** What the ledger sees of a socket. */
export interface LedgerMember {
  readonly id: string;
  readonly user: User | null;
  /** False once the socket closes: a retry then leaves. */
  readonly isOpen: boolean;
}

export type PresenceChange = "presence.join" | "presence.leave";

export interface PresenceLedgerOptions {
  presence: Presence;
  /** Tells the topic's subscribers everywhere (broker broadcast); must not throw. */
  announce(topic: string, type: PresenceChange, user: User): void;
  log: Logger;
  /** Delay before retry `attempt` (1, 2, …); default 1 s for the first 9, then 5 s. */
  retryDelayMs?(attempt: number): number;
  /** Retries before a write is abandoned (logged as an error); default 120 (about ten minutes). */
  maxAttempts?: number;
}

export class PresenceLedger {
  /** Every (socket, topic) listed or being listed ("wanted"), and the entries known to be written ("confirmed": a join that landed). */
  private readonly pairs = new PresencePairs<LedgerMember>();
  /** Joins in flight, by `id topic`: a leave waits for its socket's join. */
  private readonly joining = new Map<string, Promise<void>>();
  /** The retry waiting for its timer, by `id topic`: it writes whatever is wanted when it runs. */
  private readonly retries = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly retryDelayMs: (attempt: number) => number;
  private readonly maxAttempts: number;

  constructor(private readonly options: PresenceLedgerOptions) {
    this.retryDelayMs = options.retryDelayMs ?? ((attempt) => (attempt < 10 ? 1000 : 5000));
    this.maxAttempts = options.maxAttempts ?? 120;
  }

  /** Lists the socket in the topic; announces the user when it is its first socket there. Never rejects. */
  async join(member: LedgerMember, topic: string): Promise<void> {
    const user = member.user!;
    const key = keyOf(member, topic);
    this.pairs.want(member, topic);
    const done = (async () => {
      try {
        const changed = await this.options.presence.join(topic, member.id, user);
        this.pairs.confirm(member, topic);
        if (changed) this.options.announce(topic, "presence.join", user);
      } catch (error) {
        this.options.log.warn("presence join failed; retrying", { topic, ...errorFields(error) });
        this.retry(member, topic, 1);
      }
    })();
    this.joining.set(key, done);
    await done;
    if (this.joining.get(key) === done) this.joining.delete(key);
  }

  /** Unlists the socket, when it was listed (after its join in flight). Never throws. */
  leave(member: LedgerMember, topic: string): void {
    if (this.pairs.unwant(member, topic)) void this.unlist(member, topic);
  }

  /** True while the socket is listed, or being listed, in the topic. */
  has(member: LedgerMember, topic: string): boolean {
    return this.pairs.isWanted(member, topic);
  }

  /** Retries waiting for their timer. */
  get pendingRetries(): number {
    return this.retries.size;
  }

  /** Stops every retry (the process is closing; its presence entries go with its lease). */
  close(): void {
    for (const timer of this.retries.values()) clearTimeout(timer);
    this.retries.clear();
  }

  private async unlist(member: LedgerMember, topic: string): Promise<void> {
    const user = member.user!;
    const joining = this.joining.get(keyOf(member, topic));
    if (joining !== undefined) await joining;
    try {
      const changed = await this.options.presence.leave(topic, member.id, user);
      this.pairs.unconfirm(member, topic);
      if (changed) this.options.announce(topic, "presence.leave", user);
    } catch (error) {
      this.options.log.warn("presence leave failed; retrying", { topic, ...errorFields(error) });
      this.retry(member, topic, 1);
    }
  }

  private wants(member: LedgerMember, topic: string): boolean {
    return member.isOpen && this.pairs.isWanted(member, topic);
  }

  private retry(member: LedgerMember, topic: string, attempt: number): void {
    const key = keyOf(member, topic);
    if (this.retries.has(key)) return;
    if (attempt > this.maxAttempts) {
      this.options.log.error("presence write abandoned", { topic, connectionId: member.id });
      return;
    }
    const timer = setTimeout(() => {
      this.retries.delete(key);
      const wanted = this.wants(member, topic);
      this.settle(member, topic, wanted).then(
        // The socket may have changed its mind while the write ran; the next round settles it.
        () => wanted !== this.wants(member, topic) && this.retry(member, topic, attempt + 1),
        () => this.retry(member, topic, attempt + 1),
      );
    }, this.retryDelayMs(attempt));
    this.retries.set(key, timer);
  }

  /** Writes what the socket wants now; announces it when it changed the user's membership. */
  private async settle(member: LedgerMember, topic: string, wanted: boolean): Promise<void> {
    const user = member.user!;
    const { presence } = this.options;
    let changed = wanted ? await presence.join(topic, member.id, user) : await presence.leave(topic, member.id, user);
    const known = this.pairs.isConfirmed(member, topic);
    if (wanted) this.pairs.confirm(member, topic);
    else this.pairs.unconfirm(member, topic);
    if (!changed) {
      // The write that timed out may have been applied after all (a stalled, not a dead,
      // Redis): then nobody announced it. Decide from the list itself, and from what this ledger
      // knew: an entry known to be written was announced already (a join has nothing to add), an
      // entry never known to be written was never announced (its leave has nothing to undo).
      const me = (await presence.members(topic)).find((m) => m.user.id === user.id);
      changed = wanted ? !known && me?.connections === 1 : known && me === undefined;
    }
    if (changed) this.options.announce(topic, wanted ? "presence.join" : "presence.leave", user);
  }
}

/** The key of a write in flight (joins, retries): made only while one is. */
function keyOf(member: LedgerMember, topic: string): string {
  return `${member.id} ${topic}`;
}
