/**
 * Per-socket flood control (SPEC "Limits"): a token bucket for client frames, and the rule that
 * turns sustained rejection into close 4008. Pure: time is passed in.
 */

/** A bucket's refill rate and size: the rule's, shared by all its buckets. */
export interface BucketRate {
  readonly perSecond: number;
  readonly burst: number;
}

/**
 * A token bucket is two numbers; its rate is passed in by the rule that owns it. Every socket
 * holds one, and an object of two fields takes JSC's 32-byte cell, in memory blocks that the
 * handshake's garbage does not keep half empty as it does the 48-byte ones (bench/README.md).
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(rate: BucketRate, now: number) {
    this.tokens = rate.burst;
    this.last = now;
  }

  /** Takes one token; false when the bucket is empty (the frame must not be acted on). */
  take(rate: BucketRate, now: number): boolean {
    this.refill(rate, now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /**
   * Takes `n` tokens for work already done (an answer as big as its cost, SPEC §8): the bucket
   * may go into debt, down to -burst, and refuses frames until the debt is paid back.
   */
  charge(rate: BucketRate, n: number, now: number): void {
    if (n <= 0) return;
    this.refill(rate, now);
    this.tokens = Math.max(-rate.burst, this.tokens - n);
  }

  private refill(rate: BucketRate, now: number): void {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(rate.burst, this.tokens + (elapsed * rate.perSecond) / 1000);
      this.last = now;
    }
  }
}

/** How long rejections may go on before the socket is closed with 4008. */
export const SUSTAINED_REJECTION_MS = 2000;

/**
 * Tracks a run of rejections. A run starts at the first rejection and ends after
 * SUSTAINED_REJECTION_MS without one; accepted frames in between do not end it.
 */
export class RejectionRun {
  private startedAt = -1;
  private lastAt = -1;

  /** Records a rejection; true when the run has lasted long enough to close the socket. */
  reject(now: number): boolean {
    if (this.startedAt < 0 || now - this.lastAt >= SUSTAINED_REJECTION_MS) this.startedAt = now;
    this.lastAt = now;
    return now - this.startedAt >= SUSTAINED_REJECTION_MS;
  }
}
