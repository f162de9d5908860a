/**
 * Token buckets by key (a session, a user) for HTTP routes whose answers cost by size (SPEC §8:
 * `GET /api/presence` with a cookie). A bucket idle long enough to be full again is forgotten.
 */
import { TokenBucket, type BucketRate } from "../gateway/rate.ts";

export class KeyedBuckets {
  private readonly buckets = new Map<string, { bucket: TokenBucket; usedAt: number }>();
  private readonly rate: BucketRate;

  constructor(perSecond: number, burst: number) {
    this.rate = { perSecond, burst };
  }

  /** Takes one token for a request of `key`; false when its bucket is empty. */
  take(key: string, now: number): boolean {
    let entry = this.buckets.get(key);
    if (entry === undefined) {
      if (this.buckets.size >= 100_000) this.sweep(now);
      this.buckets.set(key, (entry = { bucket: new TokenBucket(this.rate, now), usedAt: now }));
    }
    entry.usedAt = now;
    return entry.bucket.take(this.rate, now);
  }

  /** Extra tokens for the answer just given (TokenBucket.charge). */
  charge(key: string, n: number, now: number): void {
    this.buckets.get(key)?.bucket.charge(this.rate, n, now);
  }

  /** Forgets buckets that have refilled completely since their last use. */
  sweep(now: number): void {
    const refillMs = ((2 * this.rate.burst) / this.rate.perSecond) * 1000;
    for (const [key, entry] of this.buckets) if (now - entry.usedAt > refillMs) this.buckets.delete(key);
  }
}
