/**
 * Whether this process is keeping up, from the lag of its own event loop: a timer due every
 * `intervalMs` that fires late by more than `thresholdMs` means everything queued behind it (a
 * reconnect storm's handshakes and history reads, the fan-out to the sockets already here) is
 * late too. While that is so the gateway sheds new upgrades (1013 with a retry hint) instead of
 * letting every socket's latency collapse. Threshold 0: never overloaded.
 */
export class LoadGuard {
  private lagMs = 0;
  private lastSampleAt = performance.now();
  private readonly timer: ReturnType<typeof setInterval> | null;

  constructor(
    private readonly thresholdMs: number,
    private readonly intervalMs = 50,
  ) {
    this.timer = thresholdMs > 0 ? setInterval(() => this.sample(), intervalMs) : null;
    (this.timer as { unref?(): void } | null)?.unref?.();
  }

  /** True while the last sample, or the time since it, says the loop is late past the threshold. */
  get overloaded(): boolean {
    if (this.timer === null) return false;
    const sinceSample = performance.now() - this.lastSampleAt - this.intervalMs;
    return Math.max(this.lagMs, sinceSample) > this.thresholdMs;
  }

  /** A retry hint for a shed client: 1–3 s, jittered so that the retries do not come back together. */
  retryAfterMs(): number {
    return 1000 + Math.floor(Math.random() * 2000);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
  }

  private sample(): void {
    const now = performance.now();
    this.lagMs = Math.max(0, now - this.lastSampleAt - this.intervalMs);
    this.lastSampleAt = now;
  }
}
