/**
 * The parts of prom-client this server uses, loaded from their own files. prom-client's index
 * also loads the Pushgateway (node:http, OpenTelemetry) and the default process metrics: ~250 ms
 * of a busy machine's start-up, against ~20 ms for these four classes. The types are the
 * package's own (type-only import, erased at run time).
 */
import type * as Prom from "prom-client";

export const Registry = require("prom-client/lib/registry") as typeof Prom.Registry;
export const Counter = require("prom-client/lib/counter") as typeof Prom.Counter;
export const Gauge = require("prom-client/lib/gauge") as typeof Prom.Gauge;
export const Histogram = require("prom-client/lib/histogram") as typeof Prom.Histogram;
export type Registry = Prom.Registry;

/** The default process metrics (CPU, memory, event loop lag, …), loaded only when asked for. */
export function loadDefaultMetrics(): typeof Prom.collectDefaultMetrics {
  return require("prom-client/lib/defaultMetrics") as typeof Prom.collectDefaultMetrics;
}

/** Sums the registries of a machine's workers; loaded by the supervisor only. */
export function aggregatorRegistry(): typeof Prom.AggregatorRegistry {
  return require("prom-client/lib/cluster") as typeof Prom.AggregatorRegistry;
}
