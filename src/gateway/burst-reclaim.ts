/**
 * Memory back after a burst of upgrades (a reconnect storm, a deploy, a page-load wave).
 *
 * Every handshake and first subscribe leaves garbage behind (the request, the credential check,
 * the frames' parsing, promises). An idle process allocates nothing more, so the collector never
 * runs again, and the garbage of 15,000 handshakes stayed in RSS (bench/README.md, idle memory:
 * ~6–7 KB per socket measured, of which ~1 KB is the socket's live state). Once a burst has
 * settled, one `Bun.shrink()` — a full collection, the engine's compiled code dropped, and the
 * freed pages returned to the OS (JSC `shrinkFootprintWhenIdle`) — took it to ~3.7 KB within
 * ~1.5 s. `Bun.gc(true)` alone got ~4.4 KB: the collected blocks stay with the allocators.
 *
 * It runs at most once per `minIntervalMs`, only after `minUpgrades` upgrades (taken or shed) since
 * the last time, and never while the burst goes on: only once the last `quietMs` saw fewer than
 * `settledPerS` upgrades a second, and the process is not `busy`. The pause it costs is one full collection (measured
 * 50–100 ms at 15,000 sockets on 2 shared cores) plus compiling the hot code again afterwards.
 */
import type { Logger } from "../log.ts";
import type { LoadGuard } from "./load-guard.ts";

/** The reclaim waits while the event loop runs later than this. */
const MAX_LAG_MS = 20;

/**
 * The gateway's reclaim: every upgrade the load guard sees counts, shed ones too (a storm the
 * process sheds is still a storm), and the guard says when the process is still busy with it.
 */
export function reclaimAfterBursts(load: LoadGuard, log: Logger): BurstReclaim {
  const reclaim = new BurstReclaim({
    busy: () => load.busy(MAX_LAG_MS),
    onReclaimed: (upgrades, pauseMs) => log.info("memory reclaimed after a burst", { upgrades, pauseMs: Math.round(pauseMs) }),
  });
  load.onUpgrade = () => reclaim.upgraded();
  return reclaim;
}

export interface BurstReclaimOptions {
  /** Upgrades since the last reclaim before one is worth its pause (default 1,000). */
  minUpgrades?: number;
  /** The settling window: a burst is over once the last `quietMs` saw fewer than `settledPerS` upgrades a second (default 500 ms). */
  quietMs?: number;
  /** Upgrades per second that still count as settled: ordinary churn (default 20). */
  settledPerS?: number;
  /** At most one reclaim per this long (default 60 s). */
  minIntervalMs?: number;
  /**
   * True while the process is still working through the burst: its event loop lags (the
   * resubscribes and history reads of a reconnect storm go on after its last upgrade), or clients
   * it shed will come back. A busy process collects its garbage by itself; the reclaim is for one
   * that went idle.
   */
  busy?: () => boolean;
  /** What reclaiming is (default `Bun.shrink()`); tests count the calls. */
  reclaim?: () => void;
  /** Told after each reclaim with the upgrades it followed and the event-loop pause it caused. */
  onReclaimed?: (upgrades: number, pauseMs: number) => void;
  now?: () => number;
}

export class BurstReclaim {
  private readonly minUpgrades: number;
  private readonly quietMs: number;
  private readonly minIntervalMs: number;
  private readonly reclaim: () => void;
  private readonly now: () => number;
  /**
   * When the last few upgrades came (a ring): the burst has settled once the oldest of them is
   * `quietMs` old, i.e. fewer than `settledPerS` a second came over the last `quietMs`.
   */
  private readonly recent: Float64Array;
  private next = 0;
  /** Upgrades since the last reclaim. */
  private upgrades = 0;
  private lastReclaimAt = -Infinity;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(private readonly options: BurstReclaimOptions = {}) {
    this.minUpgrades = options.minUpgrades ?? 1000;
    this.quietMs = options.quietMs ?? 500;
    this.minIntervalMs = options.minIntervalMs ?? 60_000;
    this.reclaim = options.reclaim ?? (() => Bun.shrink());
    this.now = options.now ?? (() => performance.now());
    this.recent = new Float64Array(Math.max(1, Math.ceil(((options.settledPerS ?? 20) * this.quietMs) / 1000))).fill(-Infinity);
  }

  /** An upgrade came in (taken or shed). Arms the settling check once enough have since the last reclaim. */
  upgraded(): void {
    this.recent[this.next] = this.now();
    this.next = (this.next + 1) % this.recent.length;
    this.upgrades++;
    if (this.upgrades >= this.minUpgrades && this.timer === null && !this.stopped) this.arm();
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

  /** Checks again after another settling window. */
  private rearm(): void {
    this.timer = setTimeout(() => this.check(), this.quietMs);
    (this.timer as { unref?(): void }).unref?.();
  }

  private check(): void {
    this.timer = null;
    if (this.stopped) return;
    const now = this.now();
    // Still bursting (upgrades came meanwhile), or too soon after the last one.
    if (this.recent[this.next]! + this.quietMs > now || this.lastReclaimAt + this.minIntervalMs > now) return this.arm();
    if (this.options.busy?.() === true) return this.rearm();
    const upgrades = this.upgrades;
    this.upgrades = 0;
    this.lastReclaimAt = now;
    this.reclaim();
    // Bun.shrink() runs once no JavaScript is on the stack: the next timer sees the whole pause.
    setTimeout(() => this.options.onReclaimed?.(upgrades, this.now() - now), 0);
  }
}
