/**
 * The client's side of the server's per-socket rate limit (SPEC §3 "Limits": a token bucket of
 * RATE_LIMIT_BURST frames refilled at RATE_LIMIT_PER_S; a frame over it is refused with
 * `rate_limited`, not acted on). Requests leave through this bucket, in the order they were issued:
 * what the SDK queued offline, or a burst of publishes, is spread out instead of refused.
 */
export interface RateLimit {
  /** Requests sent per second once the burst is spent. Default 45 (the server's default is 50). */
  perSecond: number;
  /** Requests sent at once on a fresh socket. Default 90 (the server's default is 100). */
  burst: number;
}

/** A little under the server's defaults: pings, and the unsubscribe of a gap repair, count there too. */
export const DEFAULT_RATE_LIMIT: RateLimit = { perSecond: 45, burst: 90 };

export class Pacer {
  #tokens: number;
  #at: number;

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#tokens = limit.burst;
    this.#at = now();
  }

  /** A new socket: the server's bucket for it starts full. */
  reset(): void {
    this.#tokens = this.limit.burst;
    this.#at = this.now();
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  /** Milliseconds until the next token. */
  waitMs(): number {
    this.#refill();
    return Math.max(1, Math.ceil(((1 - this.#tokens) / this.limit.perSecond) * 1000));
  }

  #refill(): void {
    const t = this.now();
    this.#tokens = Math.min(this.limit.burst, this.#tokens + ((t - this.#at) * this.limit.perSecond) / 1000);
    this.#at = t;
  }
}
