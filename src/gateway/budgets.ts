/**
 * What one user may make this process hold (SPEC §8): subscriptions over all its sockets, and
 * topics brought into existence per minute. Both are per process; refusals are
 * `limit_exceeded`. The per-socket subscription cap lives in the Connection itself.
 */
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { SlidingWindow } from "../budgets/sliding-window.ts";
import { inboxOf } from "../protocol/topics.ts";
import { SmallSet } from "./small-set.ts";

/** What every socket's subscription count shares: the per-socket cap, and each user's count. */
export interface SubscriptionBudget {
  readonly maxPerSocket: number;
  /** Counts one more subscription of `userId`, or throws `limit_exceeded` counting nothing. */
  take(userId: string): void;
  give(userId: string): void;
}

/** Subscriptions per user over all its sockets of this process (the inbox is never counted). */
export class SubscriptionCounts implements SubscriptionBudget {
  private readonly counts = new Map<string, number>();

  constructor(
    private readonly max: number,
    readonly maxPerSocket: number,
  ) {}

  /** Counts one more subscription of `userId`, or throws `limit_exceeded` counting nothing. */
  take(userId: string): void {
    const count = this.counts.get(userId) ?? 0;
    if (count >= this.max) throw new SwitchboardError(ErrorCode.limitExceeded, `at most ${this.max} subscriptions per user`);
    this.counts.set(userId, count + 1);
  }

  give(userId: string): void {
    const left = (this.counts.get(userId) ?? 1) - 1;
    if (left <= 0) this.counts.delete(userId);
    else this.counts.set(userId, left);
  }

  of(userId: string): number {
    return this.counts.get(userId) ?? 0;
  }
}

/**
 * One socket's subscriptions that count toward MAX_SUBSCRIPTIONS_PER_SOCKET and the user's
 * MAX_SUBSCRIPTIONS_PER_USER. A topic already held, and the socket's own inbox, count nothing.
 * The counted topics are this set itself, and the caps are shared: one small object per idle
 * socket (bench/README.md, idle memory). Change it through `count` and `uncount` only.
 */
export class SocketSubscriptions extends SmallSet {
  constructor(private readonly budget: SubscriptionBudget) {
    super();
  }

  /** Counts a client subscribe, or throws `limit_exceeded` counting nothing. */
  count(topic: string, userId: string): void {
    if (this.has(topic) || topic === inboxOf(userId)) return;
    const max = this.budget.maxPerSocket;
    if (this.size >= max) throw new SwitchboardError(ErrorCode.limitExceeded, `at most ${max} subscriptions per socket`);
    this.budget.take(userId);
    this.add(topic);
  }

  uncount(topic: string, userId: string): void {
    if (this.delete(topic)) this.budget.give(userId);
  }

  /** The socket closed: gives every place back. */
  release(userId: string): void {
    for (const topic of [...this]) this.uncount(topic, userId);
  }
}

/** A publish in flight that may bring a topic into existence: `settle` once it is done. */
export interface Creation {
  settle(): void;
}

const NONE: Creation = { settle() {} };

/**
 * TOPIC_CREATIONS_PER_MIN per user: publishes that bring a topic into existence (no history, no
 * subscriber here yet). A publish to a topic this process does not follow counts as a possible
 * creation while it is in flight, and as a creation (`created`) when it was the topic's first
 * publication. While a user's creations and possible ones fill the budget, the next such publish
 * first asks the broker whether the topic exists and goes ahead only if it does, so a refused
 * publish stores nothing.
 */
export class TopicCreations {
  private readonly window: SlidingWindow;
  private readonly inFlight = new Map<string, number>();

  constructor(
    limit: number,
    private readonly now: () => number = Date.now,
  ) {
    this.window = new SlidingWindow(limit, 60_000);
  }

  /**
   * Admits a publish of `userId` to a topic this process does not follow; throws (or rejects with)
   * `limit_exceeded`. Synchronous while the user's budget has room, the common case of the publish
   * path: only a user at the limit waits for `exists` (a broker read).
   */
  admit(userId: string, exists: () => Promise<boolean>): Creation | Promise<Creation> {
    const pending = this.inFlight.get(userId) ?? 0;
    if (this.window.count(userId, this.now()) + pending >= this.window.limit) return this.admitExisting(userId, exists);
    this.inFlight.set(userId, pending + 1);
    let settled = false;
    return {
      settle: () => {
        if (settled) return;
        settled = true;
        const left = (this.inFlight.get(userId) ?? 1) - 1;
        if (left <= 0) this.inFlight.delete(userId);
        else this.inFlight.set(userId, left);
      },
    };
  }

  /** Past the budget, only a publish to a topic that already exists goes ahead. */
  private async admitExisting(userId: string, exists: () => Promise<boolean>): Promise<Creation> {
    if (await exists()) return NONE;
    const retry = this.window.retryAfterS(userId, this.now());
    throw new SwitchboardError(ErrorCode.limitExceeded, `at most ${this.window.limit} new topics per minute; nothing was published`, retry);
  }

  /** The user's publish was the first of its topic. */
  created(userId: string): void {
    this.window.record(userId, this.now());
  }

  /** For a publish that cannot create a topic (the server's, or one to a topic followed here). */
  static none(): Creation {
    return NONE;
  }

  sweep(): void {
    this.window.sweep(this.now());
  }
}
