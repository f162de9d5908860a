/**
 * Metrics of the per-frame paths, counted in plain fields and handed to prom-client only when the
 * registry is read. prom-client's `inc` and `observe` check and hash a label object on every call
 * and `observe` allocates a closure and two objects: on the delivery path (once per publication
 * each process receives) they were the largest piece of our own JavaScript between ioredis and
 * `server.publish`, ~3 of ~40 µs per publication (issue 17, round six). A scrape shows the same.
 */
import type { Counter as PromCounter, Metric, Registry as PromRegistry } from "prom-client";
import { Counter } from "./prom.ts";

/**
 * A one-label counter of the per-frame paths (frames in and out, publications): counted in a Map
 * and added to its prom-client counter when the registry is read. prom-client's labelled `inc`
 * serializes the label object on every call: ~3 % of a process's CPU under the many-rooms load
 * (bench/README.md, round three).
 */
export class HotCounter {
  private readonly pending = new Map<string, number>();
  private readonly counter: PromCounter<string>;

  constructor(registry: PromRegistry, config: { name: string; help: string; label: string }) {
    const { label } = config;
    this.counter = new Counter({
      name: config.name,
      help: config.help,
      labelNames: [label],
      registers: [registry],
      collect: () => {
        for (const [value, count] of this.pending) this.counter.inc({ [label]: value }, count);
        this.pending.clear();
      },
    });
  }

  inc(value: string, by = 1): void {
    this.pending.set(value, (this.pending.get(value) ?? 0) + by);
  }
}

/** A counter without labels: a number, added to its prom-client counter when the registry is read. */
export class HotTally {
  private pending = 0;

  constructor(registry: PromRegistry, config: { name: string; help: string }) {
    const counter: PromCounter<string> = new Counter({
      ...config,
      registers: [registry],
      collect: () => {
        if (this.pending > 0) counter.inc(this.pending);
        this.pending = 0;
      },
    });
  }

  inc(by = 1): void {
    this.pending += by;
  }
}

interface HistogramValue {
  metricName: string;
  labels: { le?: number | string };
  value: number;
}

/**
 * A histogram without labels, rendered as prom-client renders its own (`_bucket{le}` cumulative,
 * `+Inf`, `_sum`, `_count`; summed over a machine's workers): one array slot, a sum and a count
 * per observation.
 */
export class HotHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly name: string;
  readonly help: string;
  private readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative); past the last bound only `count` moves. */
  private counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(registry: PromRegistry, config: { name: string; help: string; buckets: readonly number[] }) {
    this.name = config.name;
    this.help = config.help;
    this.bounds = config.buckets;
    this.counts = new Float64Array(config.buckets.length);
    registry.registerMetric(this as unknown as Metric);
  }

  observe(value: number): void {
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  /** What prom-client's registry reads from a metric (rendering and a machine's aggregation). */
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: HistogramValue[] }> {
    const values: HistogramValue[] = [];
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i]!;
      values.push({ metricName: `${this.name}_bucket`, labels: { le: this.bounds[i]! }, value: cumulative });
    }
    values.push({ metricName: `${this.name}_bucket`, labels: { le: "+Inf" }, value: this.count });
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.count });
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    this.counts = new Float64Array(this.bounds.length);
    this.sum = 0;
    this.count = 0;
  }
}
