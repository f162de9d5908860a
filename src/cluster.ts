/**
 * Several workers on one machine (`WORKERS=N`, SPEC §0). The process started by `bun run start`
 * becomes a small supervisor: it serves nothing itself and runs N copies of the server, each
 * bound to the same port with `reusePort` (the kernel spreads connections over them) and each a
 * full member of the deployment through Redis, with its own instance id `INSTANCE_ID-w<i>`.
 *
 * - A worker that exits while the supervisor is not stopping is started again (after 250 ms,
 *   doubling up to 10 s while it keeps dying young).
 * - SIGTERM or SIGINT to the supervisor is passed to every worker, which drains (1012 spread over
 *   DRAIN_MS) and exits; the supervisor exits 0 once all exited 0. A second signal kills them.
 * - Workers run in their own session (`detached`), so a terminal's Ctrl-C reaches them once,
 *   through the supervisor, not twice. Each holds an IPC channel to the supervisor: when the
 *   supervisor dies (even SIGKILL) the channel closes and the workers drain and exit themselves.
 * - `/metrics` on any worker answers for the whole machine: the worker asks the supervisor, which
 *   collects every worker's registry over IPC and sums it (prom-client's AggregatorRegistry), so a
 *   scrape of the shared port does not depend on which worker the kernel picked.
 */
import type { Subprocess } from "bun";
import { aggregatorRegistry } from "./prom.ts";

/** One worker's registry as `getMetricsAsJSON()` returns it (plain JSON over IPC). */
type MetricsJson = object[];
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** Set in a worker's environment to its index (0 … N-1); absent in the supervisor. */
export const WORKER_INDEX_ENV = "SWITCHBOARD_WORKER_INDEX";

/** How long the supervisor waits for a worker's metrics before answering without them. */
const METRICS_TIMEOUT_MS = 1000;
/** A worker that lived this long is healthy again: its restart delay starts over. */
const HEALTHY_AFTER_MS = 30_000;

export function workerIndex(env: Record<string, string | undefined> = process.env): number | null {
  const raw = env[WORKER_INDEX_ENV];
  if (raw === undefined || !/^\d+$/.test(raw)) return null;
  return Number(raw);
}

/** `INSTANCE_ID` plus the worker suffix, kept within the 64 characters INSTANCE_ID allows. */
export function workerInstanceId(base: string, index: number): string {
  const suffix = `-w${index}`;
  return base.slice(0, 64 - suffix.length) + suffix;
}

type ToWorker = { t: "collect"; id: number } | { t: "metrics"; id: number; text: string | null };
type FromWorker = { t: "collect"; id: number; data: MetricsJson } | { t: "metrics?"; id: number };

interface Slot {
  index: number;
  instanceId: string;
  proc: Subprocess | null;
  startedAt: number;
  /** Consecutive deaths before HEALTHY_AFTER_MS. */
  crashes: number;
  restart: ReturnType<typeof setTimeout> | null;
}

export interface SupervisorOptions {
  workers: number;
  instanceId: string;
  log: Logger;
  /** Exit this long after the stop signal even if a worker still runs (it is then killed). */
  stopTimeoutMs: number;
  /** The command of one worker; by default this Bun running this entry file. */
  command?: string[];
  env?: Record<string, string | undefined>;
}

export class Supervisor {
  private readonly slots: Slot[];
  private stopping: Promise<number> | null = null;
  private nextId = 1;
  private readonly collecting = new Map<number, { parts: MetricsJson[]; waiting: number; done: () => void }>();

  constructor(private readonly options: SupervisorOptions) {
    this.slots = Array.from({ length: options.workers }, (_, index) => ({
      index,
      instanceId: workerInstanceId(options.instanceId, index),
      proc: null,
      startedAt: 0,
      crashes: 0,
      restart: null,
    }));
  }

  start(): void {
    for (const slot of this.slots) this.spawn(slot);
    this.options.log.info("supervising workers", { workers: this.slots.length, instances: this.slots.map((s) => s.instanceId) });
  }

  /** Passes `signal` to every worker and resolves with 0 when all drained and exited 0. */
  stop(signal: NodeJS.Signals): Promise<number> {
    this.stopping ??= (async () => {
      const running: Promise<number | null>[] = [];
      for (const slot of this.slots) {
        if (slot.restart !== null) clearTimeout(slot.restart);
        slot.restart = null;
        const proc = slot.proc;
        if (proc === null || proc.exitCode !== null || proc.signalCode !== null) continue;
        proc.kill(signal);
        running.push(proc.exited.then((code) => (proc.signalCode !== null ? null : code)));
      }
      const timeout = Bun.sleep(this.options.stopTimeoutMs).then(() => "timeout" as const);
      const result = await Promise.race([Promise.all(running), timeout]);
      if (result === "timeout") {
        this.options.log.error("workers did not exit in time; killing them", { stopTimeoutMs: this.options.stopTimeoutMs });
        this.kill();
        return 1;
      }
      return result.every((code) => code === 0) ? 0 : 1;
    })();
    return this.stopping;
  }

  /** SIGKILL to every worker (second signal, or a stop that timed out). */
  kill(): void {
    for (const slot of this.slots) {
      if (slot.restart !== null) clearTimeout(slot.restart);
      slot.restart = null;
      if (slot.proc !== null && slot.proc.exitCode === null) slot.proc.kill("SIGKILL");
    }
  }

  private spawn(slot: Slot): void {
    const command = this.options.command ?? [process.execPath, Bun.main];
    const env = { ...(this.options.env ?? process.env), [WORKER_INDEX_ENV]: String(slot.index), INSTANCE_ID: slot.instanceId };
    const proc = Bun.spawn(command, {
      env,
      stdio: ["ignore", "inherit", "inherit"],
      detached: true,
      serialization: "json",
      ipc: (message: FromWorker) => this.onMessage(slot, message),
    });
    slot.proc = proc;
    slot.startedAt = Date.now();
    void proc.exited.then((code) => this.onExit(slot, proc, code));
  }

  private onExit(slot: Slot, proc: Subprocess, code: number): void {
    if (slot.proc !== proc || this.stopping !== null) return;
    slot.proc = null;
    slot.crashes = Date.now() - slot.startedAt >= HEALTHY_AFTER_MS ? 1 : slot.crashes + 1;
    const delayMs = Math.min(10_000, 250 * 2 ** (slot.crashes - 1));
    this.options.log.warn("worker exited; restarting it", { worker: slot.instanceId, code, signal: proc.signalCode, delayMs });
    slot.restart = setTimeout(() => {
      slot.restart = null;
      if (this.stopping === null) this.spawn(slot);
    }, delayMs);
  }

  private onMessage(slot: Slot, message: FromWorker): void {
    if (message.t === "metrics?") {
      void this.aggregate().then((text) => this.send(slot, { t: "metrics", id: message.id, text }));
    } else if (message.t === "collect") {
      const pending = this.collecting.get(message.id);
      if (pending === undefined) return;
      pending.parts.push(message.data);
      if (--pending.waiting === 0) pending.done();
    }
  }

  /** Every live worker's metrics, summed (state gauges by their own aggregator); null on failure. */
  private async aggregate(): Promise<string | null> {
    const id = this.nextId++;
    const live = this.slots.filter((s) => s.proc !== null && s.proc.exitCode === null);
    const parts: MetricsJson[] = [];
    const done = new Promise<void>((resolve) => this.collecting.set(id, { parts, waiting: live.length, done: resolve }));
    for (const slot of live) this.send(slot, { t: "collect", id });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, METRICS_TIMEOUT_MS)))]);
    clearTimeout(timer);
    this.collecting.delete(id);
    try {
      return await aggregatorRegistry().aggregate(parts).metrics();
    } catch (error) {
      this.options.log.warn("metrics aggregation failed", { err: error instanceof Error ? error.message : String(error) });
      return null;
    }
  }

  private send(slot: Slot, message: ToWorker): void {
    try {
      slot.proc?.send(message);
    } catch {
      // The worker is exiting: its part is simply missing from this answer.
    }
  }
}

/**
 * Wires a worker to its supervisor: answers metric collection, routes this worker's `/metrics`
 * through the machine-wide aggregate, and calls `onOrphaned` when the supervisor is gone.
 */
export function joinSupervisor(metrics: Metrics, onOrphaned: () => void): void {
  if (typeof process.send !== "function") return; // started by hand with the marker, not by a supervisor
  let nextId = 1;
  const waiting = new Map<number, (text: string | null) => void>();
  process.on("disconnect", onOrphaned);
  process.on("message", (message: ToWorker) => {
    if (message.t === "collect") {
      void metrics.collectDefaults().then(() => metrics.registry.getMetricsAsJSON()).then((data) => process.send?.({ t: "collect", id: message.id, data } satisfies FromWorker));
    } else if (message.t === "metrics") {
      waiting.get(message.id)?.(message.text);
      waiting.delete(message.id);
    }
  });
  metrics.aggregate = () =>
    new Promise<string | null>((resolve) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve(null);
      }, METRICS_TIMEOUT_MS * 2);
      waiting.set(id, (text) => {
        clearTimeout(timer);
        resolve(text);
      });
      process.send?.({ t: "metrics?", id } satisfies FromWorker);
    });
}
