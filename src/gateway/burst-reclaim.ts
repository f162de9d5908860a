/**
 * Memory back after a burst of new sockets (a reconnect storm, a deploy, a page-load wave).
 *
 * Every handshake and first subscribe leaves garbage behind (the request, the credential check,
 * the frames' parsing, promises). An idle process allocates nothing more, so the collector never
 * runs again, and the garbage of 15,000 handshakes stayed in RSS (bench/README.md, idle memory:
 * ~6–7 KB per socket measured, of which ~1 KB is the socket's live state). Once a burst has
 * settled, one `Bun.shrink()` — a full collection, the engine's compiled code dropped, and the
 * freed pages returned to the OS (JSC `shrinkFootprintWhenIdle`) — took it to ~3.7 KB within
 * ~1.5 s. `Bun.gc(true)` alone got ~4.4 KB: the collected blocks stay with the allocators.
 *
 * It runs at most once per `minIntervalMs`, only after `minSockets` sockets opened since the last
 * time, and never while the burst goes on: only once the last `quietMs` saw fewer than
 * `settledPerS` sockets open a second. The pause it costs is one full collection (measured
 * 50–100 ms at 15,000 sockets on 2 shared cores) plus compiling the hot code again afterwards.
 */

export interface BurstReclaimOptions {
  /** Sockets opened since the last reclaim before one is worth its pause (default 1,000). */
  minSockets?: number;
  /** The settling window: a burst is over once the last `quietMs` saw fewer than `settledPerS` opens a second (default 500 ms). */
  quietMs?: number;
  /** Opens per second that still count as settled: ordinary churn (default 20). */
  settledPerS?: number;
  /** At most one reclaim per this long (default 60 s). */
  minIntervalMs?: number;
  /** What reclaiming is (default `Bun.shrink()`); tests count the calls. */
  reclaim?: () => void;
  /** Told after each reclaim with the opens it followed and the event-loop pause it caused. */
  onReclaimed?: (sockets: number, pauseMs: number) => void;
  now?: () => number;
}

export class BurstReclaim {
  private readonly minSockets: number;
  private readonly quietMs: number;
  private readonly minIntervalMs: number;
  private readonly reclaim: () => void;
  private readonly now: () => number;
  /**
   * When the last few sockets opened (a ring): the burst has settled once the oldest of them is
   * `quietMs` old, i.e. fewer than `settledPerS` opened a second over the last `quietMs`.
   */
  private readonly recent: Float64Array;
  private next = 0;
  /** Sockets opened since the last reclaim. */
  private opens = 0;
  private lastReclaimAt = -Infinity;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(private readonly options: BurstReclaimOptions = {}) {
    this.minSockets = options.minSockets ?? 1000;
    this.quietMs = options.quietMs ?? 500;
    this.minIntervalMs = options.minIntervalMs ?? 60_000;
    this.reclaim = options.reclaim ?? (() => Bun.shrink());
    this.now = options.now ?? (() => performance.now());
    this.recent = new Float64Array(Math.max(1, Math.ceil(((options.settledPerS ?? 20) * this.quietMs) / 1000))).fill(-Infinity);
  }

  /** A socket opened. Arms the settling check once enough have since the last reclaim. */
  opened(): void {
    this.recent[this.next] = this.now();
    this.next = (this.next + 1) % this.recent.length;
    this.opens++;
    if (this.opens >= this.minSockets && this.timer === null && !this.stopped) this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Checks again when the burst would have settled (and the interval allows a reclaim). */
  private arm(): void {
    const settledAt = this.recent[this.next]! + this.quietMs;
    const at = Math.max(settledAt, this.lastReclaimAt + this.minIntervalMs);
    this.timer = setTimeout(() => this.check(), Math.max(1, at - this.now()));
    (this.timer as { unref?(): void }).unref?.();
  }

  private check(): void {
    this.timer = null;
    if (this.stopped) return;
    const now = this.now();
    // Still bursting (sockets came meanwhile), or too soon after the last one.
    if (this.recent[this.next]! + this.quietMs > now || this.lastReclaimAt + this.minIntervalMs > now) return this.arm();
    const sockets = this.opens;
    this.opens = 0;
    this.lastReclaimAt = now;
    this.reclaim();
    // Bun.shrink() runs once no JavaScript is on the stack: the next timer sees the whole pause.
    setTimeout(() => this.options.onReclaimed?.(sockets, this.now() - now), 0);
  }
}
