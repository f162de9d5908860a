/**
 * Per-socket flood control (SPEC "Limits"): a token bucket for client frames, and the rule that
 * turns sustained rejection into close 4008. Pure: time is passed in.
 */

/** A bucket's refill rate and size; one object shared by all buckets of the same rule (idle memory). */
export interface BucketRate {
  readonly perSecond: number;
  readonly burst: number;
}

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: BucketRate,
    now: number,
  ) {
    this.tokens = rate.burst;
    this.last = now;
  }

  /** Takes one token; false when the bucket is empty (the frame must not be acted on). */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /**
   * Takes `n` tokens for work already done (an answer as big as its cost, SPEC §8): the bucket
   * may go into debt, down to -burst, and refuses frames until the debt is paid back.
   */
  charge(n: number, now: number): void {
    if (n <= 0) return;
    this.refill(now);
    this.tokens = Math.max(-this.rate.burst, this.tokens - n);
  }

  private refill(now: number): void {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.rate.burst, this.tokens + (elapsed * this.rate.perSecond) / 1000);
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

/**
 * The two rules together, for one socket: accept a frame, refuse it, or close the socket (4008).
 * It is the socket's bucket itself, and holds a rejection run only once a frame was refused: one
 * object per idle socket instead of three.
 */
export class FloodGuard extends TokenBucket {
  private rejections: RejectionRun | null = null;

  check(now: number): "accept" | "refuse" | "close" {
    if (this.take(now)) return "accept";
    return (this.rejections ??= new RejectionRun()).reject(now) ? "close" : "refuse";
  }
}
