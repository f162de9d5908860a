/**
 * The revocation fence across machines whose REVOCATION_FENCE_MS differ (a setting changed on some
 * machines only, a rolling deploy from a version without the fence, a machine with it off). A
 * revoker waits the longest window any listed machine announces, and a kept "not revoked" is
 * trusted only for the shortest: not at all while some listed machine has no fence (it answers
 * revocations without waiting), nor before the registry has been read. Each process announces its
 * window in its deployment heartbeat (`InstanceInfo.fenceMs`); this reads them every second.
 */
import type { InstanceInfo } from "../protocol/api.ts";

export class FenceWindows {
  /** How long a kept "not revoked" may be trusted, ms: 0 until the registry has been read. */
  trustMs = 0;
  /** How long a revoker waits after Redis took its control message, ms. */
  waitMs: number;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    /** This process's own window. */
    private readonly ownMs: number,
    private readonly instances: () => Promise<InstanceInfo[]>,
    private readonly intervalMs = 1000,
  ) {
    this.waitMs = ownMs;
  }

  start(): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.intervalMs);
    (this.timer as { unref?(): void }).unref?.();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reads every listed machine's window; a failed read trusts nothing until the next one succeeds. */
  async refresh(): Promise<void> {
    try {
      this.apply((await this.instances()).map((instance) => instance.fenceMs ?? 0));
    } catch {
      this.trustMs = 0;
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
  }
}
