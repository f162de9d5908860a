/**
 * Reads the server's Prometheus text from `/metrics`, for the hostile-client tests: a metric's
 * value summed over every series that carries the given labels.
 */
import type { TestServer } from "../support/server.ts";

export async function metricsText(server: TestServer): Promise<string> {
  return (await fetch(`${server.url}/metrics`)).text();
}

/** Sum of `name{…}` over the series whose labels include `labels` (0 when there is none). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)$/);
    if (m === null || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

export async function metric(server: TestServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await metricsText(server), name, labels);
}

/** Open sockets on the process (every auth mode, authenticated or not). */
export function openSockets(server: TestServer): Promise<number> {
  return metric(server, "switchboard_connections");
}

/** Resident memory of the server process, in MB. */
export async function rssMb(server: TestServer): Promise<number> {
  return (await metric(server, "switchboard_process_resident_memory_bytes")) / 1024 / 1024;
}
