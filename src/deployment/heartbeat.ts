/**
 * Reports this process to the deployment registry every `intervalMs` (and at once on `beat()`,
 * e.g. when draining starts). A report that fails (Redis unreachable) is logged once per outage
 * and tried again at the next beat; the process then drops out of `/api/info` after its lease,
 * which is what an operator should see.
 */
import type { DeploymentRegistry, InstanceInfo } from "./registry.ts";
import { every } from "../shared-clock.ts";

/** How often a process reports, and how long a report lives: a dead process is gone within 3 s. */
export const HEARTBEAT_MS = 1000;
export const LEASE_MS = 3000;
const FIRST_RETRY_MS = 100;
/**
 * At start-up the data connection connects in the background (redis/services.ts), and under load
 * the first report can leave before it is writable ("Stream isn't writeable"). Until the first
 * report lands, failures in this window are retried without a warning: a Redis still unreachable
 * after it has its own line from the connection, and the heartbeat warns from then on.
 */
export const START_GRACE_MS = 3000;

export interface Snapshot {
  status: InstanceInfo;
  /** Local sockets per topic (live: read it at once). */
  topics: ReadonlyMap<string, number>;
  /** The topics whose counts changed since the last snapshot (null: unknown). */
  changed?: ReadonlySet<string> | null;
}

export class Heartbeat {
  /** Stops the beats (shared-clock.ts); null before `start` and after `stop`. */
  private stopBeats: (() => void) | null = null;
  /** Until the first report lands, a failed one is tried again after FIRST_RETRY_MS. */
  private firstRetry: ReturnType<typeof setTimeout> | null = null;
  private listed = false;
  private failing = false;
  private inFlight: Promise<void> | null = null;
  private next: Promise<void> | null = null;

  constructor(
    private readonly registry: DeploymentRegistry,
    private readonly snapshot: () => Snapshot,
    private readonly log: (message: string, fields: Record<string, unknown>) => void,
    private readonly intervalMs = HEARTBEAT_MS,
    /**
     * Called once, when the registry first lists this process. Until then the other machines'
     * server API calls do not wait for it, so it is not ready for sockets (`/readyz` 503).
     */
    private readonly onListed: () => void = () => {},
    private readonly startGraceMs = START_GRACE_MS,
  ) {}

  private startedAt = 0;

  start(): void {
    this.startedAt = performance.now();
    void this.beat();
    this.stopBeats = every(this.intervalMs, () => void this.beat());
  }

  /**
   * Reports now, one report at a time (a slow Redis does not pile them up): a call while one is in
   * flight reports once more right after it, so a change (draining) is never lost in the old one.
   * Never rejects.
   */
  beat(): Promise<void> {
    if (this.inFlight !== null) {
      this.next ??= this.inFlight.then(() => {
        this.next = null;
        return this.beat();
      });
      return this.next;
    }
    this.inFlight = (async () => {
      try {
        const { status, topics, changed } = this.snapshot();
        await this.registry.report(status, topics, changed);
        this.failing = false;
        if (!this.listed) {
          this.listed = true;
          this.onListed();
        }
      } catch (error) {
        const starting = !this.listed && performance.now() - this.startedAt < this.startGraceMs;
        if (!this.failing && !starting) {
          this.log("deployment heartbeat failed; retrying", failureFields(error));
          this.failing = true;
        }
        if (!this.listed && this.stopBeats !== null) {
          // One retry pending at most: an interval beat failing too must not leave a timer stop() cannot clear.
          if (this.firstRetry !== null) clearTimeout(this.firstRetry);
          this.firstRetry = setTimeout(() => void this.beat(), FIRST_RETRY_MS);
          this.firstRetry.unref?.();
        }
      } finally {
        this.inFlight = null;
      }
    })();
    return this.inFlight;
  }

  /** Stops reporting and removes this process from the registry (best effort). */
  async stop(id: string): Promise<void> {
    this.stopBeats?.();
    if (this.firstRetry !== null) clearTimeout(this.firstRetry);
    this.stopBeats = null;
    await this.next;
    await this.inFlight;
    await this.registry.remove(id).catch(() => {});
  }
}

/** The failure's sentence and, for the operator, what Redis or ioredis said (the error's cause). */
function failureFields(error: unknown): Record<string, unknown> {
  const fields: Record<string, unknown> = { error: error instanceof Error ? error.message : String(error) };
  if (error instanceof Error && error.cause instanceof Error) fields.cause = error.cause.message;
  return fields;
}
