import { describe, expect, test } from "bun:test";
import { Counter, Histogram, Registry } from "./prom.ts";
import { HotHistogram, HotTally } from "./hot-metrics.ts";

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1, 2.5, 5];

describe("per-frame metrics render as prom-client's own", () => {
  test("a histogram: the same exposition and JSON for the same observations, bounds and past the last included", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const hot = new HotHistogram(ours, { name: "lag_seconds", help: "h", buckets: BUCKETS });
    const plain = new Histogram({ name: "lag_seconds", help: "h", buckets: BUCKETS, registers: [theirs] });
    expect(await ours.metrics()).toBe(await theirs.metrics()); // nothing observed yet
    for (const v of [0, 0.0005, 0.0007, 0.001, 0.3, 1, 4.99, 5, 7.5, 120, 0.02, 0.02]) {
      hot.observe(v);
      plain.observe(v);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    // What a machine's workers send their supervisor, without prom-client's empty exemplars.
    const json = async (r: Registry) => JSON.parse(JSON.stringify(await r.getMetricsAsJSON(), (k, v) => (k === "exemplar" ? undefined : v)));
    expect(await json(ours)).toEqual(await json(theirs));
    ours.resetMetrics();
    theirs.resetMetrics();
    hot.observe(0.003);
    plain.observe(0.003);
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  test("a counter without labels: counted between reads, the same total as inc on every call", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const hot = new HotTally(ours, { name: "fanouts_total", help: "c" });
    const plain = new Counter({ name: "fanouts_total", help: "c", registers: [theirs] });
    for (const by of [1, 1, 3, 0, 2]) {
      hot.inc(by);
      plain.inc(by);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    hot.inc();
    plain.inc();
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});
