/**
 * Memory back after a burst of new sockets (a reconnect storm, a deploy, a page-load wave).
 *
 * Every handshake and first subscribe leaves garbage behind (the request, the credential check,
 * the frames' parsing, promises). An idle process allocates nothing more, so the collector never
 * runs again, and the garbage of 15,000 handshakes stayed in RSS (bench/README.md, idle memory:
 * ~6–7 KB per socket measured, of which ~1 KB is the socket's live state). Once a burst has
 * settled, one `Bun.shrink()` — a full collection, the engine's compiled code dropped, and the
 * freed pages returned to the OS (JSC `shrinkFootprintWhenIdle`) — brings that down to ~3.7 KB.
 * `Bun.gc(true)` alone got ~4.4 KB: the collected blocks stay with the allocators.
 *
 * It runs at most once per `minIntervalMs`, only after `minSockets` sockets opened since the last
 * time, and never while the burst goes on: only once a whole `quietMs` saw fewer than
 * `settledPerS` sockets open. The pause it costs is one full collection (measured ~40–60 ms at
 * 15,000 sockets on 2 shared cores) plus recompiling the hot code afterwards.
 */

export interface BurstReclaimOptions {
  /** Sockets opened since the last reclaim before one is worth its pause (default 1,000). */
  minSockets?: number;
  /** The settling window: a burst is over once one saw fewer than `settledPerS` opens a second (default 500 ms). */
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
  private readonly settledPerS: number;
  private readonly minIntervalMs: number;
  private readonly reclaim: () => void;
  private readonly now: () => number;
  /** Sockets opened since the last reclaim. */
  private opens = 0;
  /** `opens` and the time when the current settling window started. */
  private opensAtWindow = 0;
  private windowStart = 0;
  private lastReclaimAt = -Infinity;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(private readonly options: BurstReclaimOptions = {}) {
    this.minSockets = options.minSockets ?? 1000;
    this.quietMs = options.quietMs ?? 500;
    this.settledPerS = options.settledPerS ?? 20;
    this.minIntervalMs = options.minIntervalMs ?? 60_000;
    this.reclaim = options.reclaim ?? (() => Bun.shrink());
    this.now = options.now ?? (() => performance.now());
  }

  /** A socket opened. Arms the settling check once enough have since the last reclaim. */
  opened(): void {
    this.opens++;
    if (this.opens >= this.minSockets && this.timer === null && !this.stopped) this.arm(this.quietMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** A settling window from now: checked after `delayMs`. */
  private arm(delayMs: number): void {
    this.opensAtWindow = this.opens;
    this.windowStart = this.now();
    this.timer = setTimeout(() => this.check(), delayMs);
    (this.timer as { unref?(): void }).unref?.();
  }

  private check(): void {
    this.timer = null;
    if (this.stopped) return;
    const wait = this.lastReclaimAt + this.minIntervalMs - this.now();
    if (wait > 0) return this.arm(Math.max(wait, this.quietMs));
    const perS = ((this.opens - this.opensAtWindow) * 1000) / Math.max(1, this.now() - this.windowStart);
    if (perS >= this.settledPerS) return this.arm(this.quietMs); // still bursting
    const sockets = this.opens;
    this.opens = 0;
    this.lastReclaimAt = this.now();
    const start = this.now();
    this.reclaim();
    // Bun.shrink() runs once no JavaScript is on the stack: the next timer sees the whole pause.
    setTimeout(() => this.options.onReclaimed?.(sockets, this.now() - start), 0);
  }
}
