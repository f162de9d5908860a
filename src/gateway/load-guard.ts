/** The retry hint a shed client gets: between these. */
const MIN_RETRY_MS = 1000;
const MAX_RETRY_MS = 3000;

/**
 * Whether this process is keeping up, from the lag of its own event loop: a timer due every
 * `intervalMs` that fires late by more than `thresholdMs` means everything queued behind it (a
 * reconnect storm's handshakes and history reads, the fan-out to the sockets already here) is
 * late too. While that is so the gateway sheds new upgrades (1013 with a retry hint) instead of
 * letting every socket's latency collapse. Threshold 0: never overloaded.
 *
 * Only a storm is shed: the process must also have taken at least `minUpgradesPerS` upgrades in
 * the last second. A lone pause (a GC, a busy neighbour on the machine) sheds nobody.
 */
export class LoadGuard {
  private lagMs = 0;
  private lastSampleAt = performance.now();
  private readonly timer: ReturnType<typeof setInterval> | null;
  /** Upgrades counted in the current and the previous 1 s window. */
  private upgrades = 0;
  private upgradesBefore = 0;
  private windowStart = performance.now();
  private lastShedAt = Number.NEGATIVE_INFINITY;
  /** Told of every upgrade, shed or not (the gateway's burst reclaim counts them: burst-reclaim.ts). */
  onUpgrade: (() => void) | null = null;

  constructor(
    private readonly thresholdMs: number,
    private readonly intervalMs = 50,
    private readonly minUpgradesPerS = 100,
  ) {
    this.timer = thresholdMs > 0 ? setInterval(() => this.sample(), intervalMs) : null;
    (this.timer as { unref?(): void } | null)?.unref?.();
  }

  /**
   * Counts one upgrade and says whether to shed it: true while the last sample (or the time since
   * it) says the loop is late past the threshold and upgrades come in at a storm's rate.
   */
  shouldShed(): boolean {
    this.onUpgrade?.();
    if (this.timer === null) return false;
    const now = performance.now();
    if (now - this.windowStart >= 1000) {
      this.upgradesBefore = now - this.windowStart < 2000 ? this.upgrades : 0;
      this.upgrades = 0;
      this.windowStart = now;
    }
    this.upgrades++;
    const rate = this.upgrades + this.upgradesBefore * Math.max(0, 1 - (now - this.windowStart) / 1000);
    if (rate < this.minUpgradesPerS) return false;
    const shed = Math.max(this.lagMs, now - this.lastSampleAt - this.intervalMs) > this.thresholdMs;
    if (shed) this.lastShedAt = now;
    return shed;
  }

  /**
   * Whether the process is still in a storm it cannot keep up with: the event loop runs later than
   * `maxLagMs`, or clients it shed may still come back (their retry hint has not passed).
   */
  busy(maxLagMs: number): boolean {
    if (this.timer === null) return false;
    const now = performance.now();
    return now - this.lastShedAt < MAX_RETRY_MS || Math.max(this.lagMs, now - this.lastSampleAt - this.intervalMs) > maxLagMs;
  }

  /** A retry hint for a shed client: 1–3 s, jittered so that the retries do not come back together. */
  retryAfterMs(): number {
    return MIN_RETRY_MS + Math.floor(Math.random() * (MAX_RETRY_MS - MIN_RETRY_MS));
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
