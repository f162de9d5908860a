/**
 * The revocation fence across machines whose REVOCATION_FENCE_MS differ (a setting changed on some
 * machines only, a rolling deploy from a version without the fence, a machine with it off). A
 * revoker waits the longest window any listed machine announces, and a kept "not revoked" is
 * trusted only for the shortest: not at all while some listed machine has no fence (it answers
 * revocations without waiting), nor before the registry has been read. Each process announces its
 * window in its deployment heartbeat (`InstanceInfo.fenceMs`); this reads them every second, or
 * hears them from the heartbeat's own call (`heard`: on Redis the report reads the live list back,
 * deployment/lua/report.lua) and then skips its read.
 *
 * A process that has not read the registry yet does not know the others' windows: one that starts
 * with a shorter window than theirs would answer a logout before they stop trusting what they kept.
 * Its revokers wait for that first read.
 */
import type { InstanceInfo } from "../protocol/api.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { every } from "../shared-clock.ts";

/** How long a revoker waits for the first read of the registry before it answers `unavailable`. */
export const FIRST_READ_MS = 3000;

export class FenceWindows {
  /** How long a kept "not revoked" may be trusted, ms: 0 until the registry has been read. */
  trustMs = 0;
  /** How long a revoker waits after Redis took its control message, ms. */
  waitMs: number;
  /** The retry after a failed read, while one is due. */
  private retry: ReturnType<typeof setTimeout> | null = null;
  /** Stops the reads every interval (shared-clock.ts); null while not running. */
  private stopReads: (() => void) | null = null;
  private reading = false;
  private readonly firstRead = Promise.withResolvers<void>();
  private read = false;
  /** When a heartbeat last handed over the live list (performance.now()). */
  private heardAt = -Infinity;

  constructor(
    /** This process's own window. */
    private readonly ownMs: number,
    private readonly instances: () => Promise<InstanceInfo[]>,
    private readonly intervalMs = 1000,
    private readonly retryMs = 50,
  ) {
    this.waitMs = ownMs;
  }

  /**
   * Reads now, then every interval; a failed read is retried after `retryMs` instead. A process reads
   * right as it starts, before its Redis connection may be writable: without the retry it would trust
   * no kept "not revoked" (a Redis read per handshake) for a whole interval after it is ready.
   */
  start(): void {
    if (this.stopReads !== null) return;
    this.stopReads = every(this.intervalMs, () => {
      // A heartbeat's list is at most ~1 s old: as current as a read of our own would be.
      if (performance.now() - this.heardAt >= this.intervalMs * 1.5) void this.cycle();
    });
    void this.cycle();
  }

  /**
   * The live processes a heartbeat read in its own call; null when that call failed, which
   * starts a read of our own at once (a failure then trusts nothing until one succeeds, as above).
   */
  heard(live: InstanceInfo[] | null): void {
    if (live === null) {
      this.heardAt = -Infinity;
      if (this.stopReads !== null) void this.cycle();
      return;
    }
    this.heardAt = performance.now();
    this.apply(live.map((instance) => instance.fenceMs ?? 0));
  }

  stop(): void {
    this.stopReads?.();
    this.stopReads = null;
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
  }

  /** One read (none while one is on its way); a failed one is tried again after `retryMs`. */
  private async cycle(): Promise<void> {
    if (this.reading) return;
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    this.reading = true;
    const ok = await this.refresh();
    this.reading = false;
    if (ok || this.stopReads === null) return;
    this.retry = setTimeout(() => void this.cycle(), this.retryMs);
    (this.retry as { unref?(): void }).unref?.();
  }

  /**
   * How long a revoker waits after Redis took its control message: the longest window listed, once
   * the registry has been read. Rejects `unavailable` when no read succeeded within `firstReadMs`.
   */
  async revokerWaitMs(firstReadMs = FIRST_READ_MS): Promise<number> {
    if (!this.read) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), firstReadMs)));
      const outcome = await Promise.race([this.firstRead.promise, late]);
      clearTimeout(timer);
      if (outcome === "late") throw new SwitchboardError(ErrorCode.unavailable, "the deployment registry is unreachable; retry");
    }
    return this.waitMs;
  }

  /** Reads every listed machine's window; a failed read trusts nothing until the next one succeeds. */
  async refresh(): Promise<boolean> {
    try {
      this.apply((await this.instances()).map((instance) => instance.fenceMs ?? 0));
      return true;
    } catch {
      this.trustMs = 0;
      return false;
    }
  }

  /** The listed machines' windows (0: no fence): trust the shortest, wait the longest, own included. */
  apply(windows: number[]): void {
    let trust = this.ownMs;
    let wait = this.ownMs;
    for (const window of windows) {
      if (window < trust) trust = window;
      if (window > wait) wait = window;
    }
    this.trustMs = trust;
    this.waitMs = wait;
    if (!this.read) {
      this.read = true;
      this.firstRead.resolve();
    }
  }
}
