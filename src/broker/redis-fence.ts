/**
 * The revocation fence on one Redis (docs/redis.md "The revocation fence"; auth/revocation-view.ts
 * decides with it): the control link's canaries, sent through the command connection, date what
 * the link heard.
 *
 * They run every fifth of the window while credential checks want the fence, and for
 * FENCE_LAPSE_MS after the last one; then they stop, so an idle process does not wake 20 times a
 * second for them. A lapsed fence is not current (its newest canary is older than a window), so the
 * checks read the store; the first one sends a canary at once, and the fence is current again a
 * round trip later.
 */
import type { ControlFence, ControlMessage } from "./broker.ts";
import type { Announcement } from "../stores/stores.ts";
import { redisKeys } from "./redis-keys.ts";
import type { Subscriptions } from "./redis-subscriptions.ts";

/** How long after the last credential check that wanted it the fence's canaries keep running. */
export const FENCE_LAPSE_MS = 10_000;

export class RedisFence implements ControlFence {
  private timer: ReturnType<typeof setInterval> | undefined;
  private wantedAt = -Infinity;
  /** Between `start` (the broker is connected) and `stop`. */
  private running = false;

  constructor(
    readonly windowMs: number,
    private readonly subs: Subscriptions,
    /** Sends one canary on the control link (when the command connection can). */
    private readonly sendCanary: () => void,
  ) {}

  continuity(): number | null {
    return this.subs.controlContinuity;
  }

  current(withinMs = this.windowMs): boolean {
    return performance.now() - this.subs.controlHeardUpTo < withinMs;
  }

  /** As the broker's sendControl publishes it: the same channel, the same encoding. */
  announcement(message: ControlMessage): Announcement {
    return { channel: redisKeys.control, message: JSON.stringify(message) };
  }

  /** A credential check wants the fence: the canaries run (again); after a lapse the first goes out at once. */
  wanted(): void {
    this.wantedAt = performance.now();
    if (this.timer !== undefined || !this.running) return;
    this.timer = setInterval(() => this.tick(), Math.max(10, Math.floor(this.windowMs / 5)));
    this.tick();
  }

  start(): void {
    this.running = true;
  }

  stop(): void {
    this.running = false;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One canary; none, and no more ticks (the fence lapses), once no check wanted it for FENCE_LAPSE_MS. */
  private tick(): void {
    if (performance.now() - this.wantedAt > FENCE_LAPSE_MS) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    this.sendCanary();
  }
}
