/**
 * The password-verification budget (SPEC §8 "Login"): a password hash costs tens of milliseconds
 * of a core, so at most `concurrency` verifications run at once (one per core) and at most
 * `queue` more wait behind them; past that an attempt is refused at once (`overloaded`: 503 with
 * Retry-After) instead of waiting.
 *
 * Fair between clients: a free place goes to the waiting key (the client address) with the fewest
 * verifications running, in turn among equals, and a newcomer that finds the queue full takes the
 * place of the newest waiter of the key holding the most places. With more than one place, one key
 * runs at most `concurrency - 1` verifications at once: a flood from one address keeps the queue
 * full of its own attempts, yet another user's login finds a place free and starts at once instead
 * of waiting for a verification of the flood to end (on a loaded machine a verification took
 * 300–500 ms, and that wait plus its own went past the SPEC's 1 s in test/budgets/login.test.ts).
 */
import { availableParallelism } from "node:os";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";

export interface PasswordGateOptions {
  /** Verifications at once; default: the machine's cores. */
  concurrency?: number;
  /**
   * Waiting places behind them (at least 16); default max(16, 8 × concurrency). Fairness does not
   * depend on it (a newcomer's key is served first); it bounds what a flood holds and waits for.
   */
  queue?: number;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

function overloaded(): SwitchboardError {
  return new SwitchboardError(ErrorCode.overloaded, "too many logins in progress; try again shortly", 1);
}

export class PasswordGate {
  readonly concurrency: number;
  readonly queueSize: number;
  /** Verifications one key runs at once: one place stays free for the others. */
  readonly perKey: number;
  private running = 0;
  private waiting = 0;
  /** Waiters by key; the Map's order is the turn (a served key goes to the back). */
  private readonly queues = new Map<string, Waiter[]>();
  /** Verifications running, by key. */
  private readonly runningBy = new Map<string, number>();

  constructor(options: PasswordGateOptions = {}) {
    this.concurrency = Math.max(1, options.concurrency ?? availableParallelism());
    this.queueSize = Math.max(16, options.queue ?? 8 * this.concurrency);
    this.perKey = Math.max(1, this.concurrency - 1);
  }

  /** Places taken now, running and waiting. */
  get load(): number {
    return this.running + this.waiting;
  }

  /** Runs `verify` when a place is free; throws `overloaded` without running it when none will be. */
  async run<T>(key: string, verify: () => Promise<T>): Promise<T> {
    if (this.running < this.concurrency && this.runs(key) < this.perKey) {
      this.running += 1;
      this.runningBy.set(key, this.runs(key) + 1);
    } else {
      if (this.waiting >= this.queueSize && !this.evictFor(key)) throw overloaded();
      // handOver gives the place and counts it for the key.
      await new Promise<void>((resolve, reject) => this.enqueue(key, { resolve, reject }));
    }
    try {
      return await verify();
    } finally {
      const left = this.runningBy.get(key)! - 1;
      if (left === 0) this.runningBy.delete(key);
      else this.runningBy.set(key, left);
      this.handOver();
    }
  }

  private runs(key: string): number {
    return this.runningBy.get(key) ?? 0;
  }

  private enqueue(key: string, waiter: Waiter): void {
    const list = this.queues.get(key);
    if (list === undefined) this.queues.set(key, [waiter]);
    else list.push(waiter);
    this.waiting += 1;
  }

  /**
   * A place came free: it passes to the waiting key with the fewest verifications running (the
   * first in turn among equals; it then goes to the back) unless that key runs `perKey` already,
   * or frees up. Counted for the key here, not when its waiter resumes: two verifications that
   * end in one turn must not both hand a place to a key below its bound.
   */
  private handOver(): void {
    let key: string | null = null;
    let fewest = this.perKey;
    for (const k of this.queues.keys()) {
      const running = this.runs(k);
      if (running < fewest) [key, fewest] = [k, running];
      if (running === 0) break;
    }
    if (key === null) {
      this.running -= 1;
      return;
    }
    const list = this.queues.get(key)!;
    const waiter = list.shift()!;
    this.waiting -= 1;
    this.queues.delete(key);
    if (list.length > 0) this.queues.set(key, list);
    this.runningBy.set(key, fewest + 1);
    waiter.resolve();
  }

  /** The queue is full: refuses the newest waiter of the key with the most places, if it holds more than `key` would. */
  private evictFor(key: string): boolean {
    let worst: string | null = null;
    let worstLength = 0;
    for (const [k, list] of this.queues) {
      if (list.length > worstLength) [worst, worstLength] = [k, list.length];
    }
    const mine = this.queues.get(key)?.length ?? 0;
    if (worst === null || worstLength <= mine + 1) return false;
    const list = this.queues.get(worst)!;
    const victim = list.pop()!;
    this.waiting -= 1;
    if (list.length === 0) this.queues.delete(worst);
    victim.reject(overloaded());
    return true;
  }
}
