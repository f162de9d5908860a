/**
 * The one Prometheus text parser of the tests: reads `/metrics` into numbers a test can compare.
 *
 *   const before = await scrape(server);
 *   ... traffic ...
 *   const after = await scrape(server);
 *   expect(after.delta(before, "switchboard_publications_total", { source: "ws" })).toBe(3);
 *
 *   expect(await metric(server, "switchboard_upgrades_rejected_total", { reason: "origin" })).toBe(1);
 *
 * A series that is absent counts as 0 (a labelled counter appears only once incremented).
 */
export interface Scrape {
  text: string;
  /** The sample of `name` whose labels include all of `labels`, summed over the others. */
  value(name: string, labels?: Record<string, string>): number;
  /** `this.value(...) - before.value(...)`. */
  delta(before: Scrape, name: string, labels?: Record<string, string>): number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Scrape {
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (m === null) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  const scrape: Scrape = {
    text,
    value(name, labels = {}) {
      let sum = 0;
      for (const s of samples) {
        if (s.name !== name) continue;
        if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
      }
      return sum;
    },
    delta(before, name, labels) {
      return scrape.value(name, labels) - before.value(name, labels);
    },
  };
  return scrape;
}

const lastFetch = new Map<string, number>();

/**
 * GET `url` (a `/metrics` address) at least 1.05 s after the previous answer for it arrived: the
 * server renders /metrics at most once per second, counted from when a rendering's request reached
 * it (SPEC §8), so a scrape sooner would repeat the last. Counting from the previous *answer*, not
 * from when it was asked, matters on a loaded machine: a request that waited 100 ms to be read
 * started the server's second that much later.
 */
export async function fetchMetrics(url: string, init: RequestInit = {}): Promise<Response> {
  const wait = (lastFetch.get(url) ?? 0) + 1050 - Date.now();
  if (wait > 0) await Bun.sleep(wait);
  try {
    return await fetch(url, init);
  } finally {
    lastFetch.set(url, Date.now());
  }
}

export async function scrape(server: { url: string }, timeoutMs = 3000): Promise<Scrape> {
  const res = await fetchMetrics(`${server.url}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/metrics → ${res.status} ${text.slice(0, 200)}`);
  if (!(res.headers.get("content-type") ?? "").startsWith("text/plain")) throw new Error(`/metrics content-type ${res.headers.get("content-type")}`);
  return parseMetrics(text);
}

/** Sum of `name{…}` over the series whose labels include `labels`, in one scrape (0 when there is none). */
export async function metric(server: { url: string }, name: string, labels: Record<string, string> = {}): Promise<number> {
  // Patient: the hostile tests read it while the server is under attack.
  return (await scrape(server, 30_000)).value(name, labels);
}

/** Open sockets on the process (every auth mode, authenticated or not). */
export function openSockets(server: { url: string }): Promise<number> {
  return metric(server, "switchboard_connections");
}

/** Resident memory of the server process, in MB. */
export async function rssMb(server: { url: string }): Promise<number> {
  return (await metric(server, "switchboard_process_resident_memory_bytes")) / 1024 / 1024;
}
