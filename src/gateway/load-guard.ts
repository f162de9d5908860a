/** The retry hint a shed client gets: between these. */
const MIN_RETRY_MS = 1000;
const MAX_RETRY_MS = 3000;
/** The loop's lag is sampled for this long after the last upgrade or `busy` call. */
const SAMPLE_FOR_MS = 5000;

/** What the guard sheds on (gateway.ts builds it from SHED_WAIT_MS, SHED_LAG_MS and the stores). */
export interface LoadSignals {
  /**
   * How long the oldest credential check not sent yet has waited for its revocation read
   * (stores/revocation-reads.ts `oldestWaitMs`); absent where checks do not queue (embedded stores).
   */
  readWait?: () => number;
  /** With `readWait`: shed while it is over this many ms (SHED_WAIT_MS); 0: never. */
  maxReadWaitMs: number;
  /** Without `readWait`: shed while the event loop lags more than this many ms (SHED_LAG_MS); 0: never. */
  maxLagMs: number;
}

/**
 * Whether this process is keeping up with a storm of upgrades. While it is not, the gateway sheds
 * new upgrades (1013 with a retry hint) instead of letting every socket's latency collapse.
 *
 * Where credential checks queue for their revocation reads (Redis), the signal is **how long a new
 * upgrade would wait for its read**, as the queue shows it: the age of the oldest check not sent yet
 * (checks leave in order, in batches, one per turn of the loop, so a loop made slow by other work
 * makes it grow too). A shed saves exactly that: its read, its 101, its subscribes. The loop's lag is
 * not the signal there: during a storm it is mostly the arrivals themselves (Bun reads every ready
 * request in one turn), which a shed cannot make cheaper — a shed costs more of a turn than an
 * upgrade waiting for its read, and shedding on one long turn of arrivals cascaded (bench/README.md,
 * rounds six and seven). Without such a queue (embedded stores) the signal is the loop's lag: a
 * timer due every `intervalMs` that fires late by more than `maxLagMs` means everything queued
 * behind it is late too. That timer runs only while it is asked (an upgrade, `busy`) and for
 * SAMPLE_FOR_MS after: an idle process does not wake 20 times a second for it.
 *
 * Only a storm is shed: the process must also have taken at least `minUpgradesPerS` upgrades in
 * the last second. A lone pause (a GC, a busy neighbour on the machine) sheds nobody.
 */
export class LoadGuard {
  private lagMs = 0;
  private lastSampleAt = performance.now();
  /** The lag sampler, while it runs (`sampling`); null between. */
  private timer: ReturnType<typeof setInterval> | null = null;
  /** When an upgrade or `busy` last asked for the lag. */
  private askedAt = Number.NEGATIVE_INFINITY;
  /** Upgrades counted in the current and the previous 1 s window. */
  private upgrades = 0;
  private upgradesBefore = 0;
  private windowStart = performance.now();
  private lastShedAt = Number.NEGATIVE_INFINITY;
  /** Told of every upgrade, shed or not (the gateway's burst reclaim counts them: burst-reclaim.ts). */
  onUpgrade: (() => void) | null = null;

  /** How late the process is by the signal in use, in ms, and past what it sheds (0: never). */
  private readonly late: () => number;
  private readonly thresholdMs: number;
  private stopped = false;

  constructor(
    signals: LoadSignals,
    private readonly intervalMs = 50,
    private readonly minUpgradesPerS = 100,
  ) {
    const { readWait } = signals;
    this.thresholdMs = readWait !== undefined ? signals.maxReadWaitMs : signals.maxLagMs;
    this.late = readWait ?? (() => Math.max(this.lagMs, performance.now() - this.lastSampleAt - this.intervalMs));
  }

  /**
   * Counts one upgrade and says whether to shed it: true while upgrades come in at a storm's rate
   * and the process is late past the threshold: the oldest queued read has waited longer than it, or
   * (without a read queue) the last sample, or the time since it, says the loop is.
   */
  shouldShed(): boolean {
    this.onUpgrade?.();
    if (this.thresholdMs === 0) return false;
    const now = performance.now();
    this.sampling(now);
    if (now - this.windowStart >= 1000) {
      this.upgradesBefore = now - this.windowStart < 2000 ? this.upgrades : 0;
      this.upgrades = 0;
      this.windowStart = now;
    }
    this.upgrades++;
    const rate = this.upgrades + this.upgradesBefore * Math.max(0, 1 - (now - this.windowStart) / 1000);
    if (rate < this.minUpgradesPerS) return false;
    const shed = this.late() > this.thresholdMs;
    if (shed) this.lastShedAt = now;
    return shed;
  }

  /**
   * Whether the process is still in a storm it cannot keep up with: the event loop runs later than
   * `maxLagMs`, or clients it shed may still come back (their retry hint has not passed).
   */
  busy(maxLagMs: number): boolean {
    if (this.thresholdMs === 0) return false;
    const now = performance.now();
    // Not sampled lately: unknown until the sampler has run a while (a caller asks again later).
    if (!this.sampling(now)) return true;
    return now - this.lastShedAt < MAX_RETRY_MS || Math.max(this.lagMs, now - this.lastSampleAt - this.intervalMs) > maxLagMs;
  }

  /** A retry hint for a shed client: 1–3 s, jittered so that the retries do not come back together. */
  retryAfterMs(): number {
    return MIN_RETRY_MS + Math.floor(Math.random() * (MAX_RETRY_MS - MIN_RETRY_MS));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Keeps the lag sampled; starts the sampler when it was not running. False: it only starts now. */
  private sampling(now: number): boolean {
    this.askedAt = now;
    if (this.timer !== null || this.stopped) return true;
    this.lagMs = 0;
    this.lastSampleAt = now;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    (this.timer as { unref?(): void }).unref?.();
    return false;
  }

  private sample(): void {
    const now = performance.now();
    this.lagMs = Math.max(0, now - this.lastSampleAt - this.intervalMs);
    this.lastSampleAt = now;
    // Nobody asked for a while and no shed client is due back: the sampler sleeps until asked.
    if (now - this.askedAt > SAMPLE_FOR_MS && now - this.lastShedAt > MAX_RETRY_MS) {
      clearInterval(this.timer!);
      this.timer = null;
    }
  }
}
