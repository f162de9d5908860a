/**
 * SPEC §8: `/metrics` is rendered at most once per second whatever the scrape rate, and with
 * METRICS_PORT it is served only on that port (the public port answers 404).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { apiPublish, freePort, killAllServers, startServer, type TestServer } from "../support/server.ts";
import { parseMetrics } from "../support/metrics.ts";

let server: TestServer;
let privateMetrics: TestServer;
const metricsPort = freePort();
beforeAll(async () => {
  [server, privateMetrics] = await Promise.all([startServer({}), startServer({ METRICS_PORT: String(metricsPort) })]);
});
afterAll(() => {
  server?.kill();
  privateMetrics?.kill();
  killAllServers();
});

async function metricsAt(url: string) {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

describe("/metrics is rendered at most once per second", () => {
  test("200 scrapes in a burst see one rendering; a scrape a second later sees what happened since", async () => {
    const started = Date.now();
    const first = await metricsAt(`${server.url}/metrics`);
    expect((await apiPublish(server, { topic: "room:m", data: 1 })).status).toBe(202);
    const burst = await Promise.all(Array.from({ length: 200 }, () => metricsAt(`${server.url}/metrics`)));
    // Renderings: one per second begun (the first one's, while the burst stays within its second).
    const renderings = new Set([first.text, ...burst.map((s) => s.text)]).size;
    expect(renderings).toBeLessThanOrEqual(1 + Math.floor((Date.now() - started) / 1000));
    await Bun.sleep(1050);
    const later = await metricsAt(`${server.url}/metrics`);
    const published = (text: string) => parseMetrics(text).value("switchboard_publications_total", { source: "api" });
    expect(published(later.text) - published(first.text)).toBe(1);
  });
});

describe("METRICS_PORT", () => {
  test("/metrics answers on the metrics port only; the public port answers 404, the metrics port nothing else", async () => {
    const onPublic = await metricsAt(`${privateMetrics.url}/metrics`);
    expect(onPublic.status).toBe(404);
    expect(JSON.parse(onPublic.text)).toMatchObject({ error: { code: "not_found" } });
    const onPrivate = await metricsAt(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(onPrivate.status).toBe(200);
    expect(parseMetrics(onPrivate.text).value("switchboard_info")).toBe(1);
    expect((await metricsAt(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(404);
    expect((await metricsAt(`${privateMetrics.url}/healthz`)).status).toBe(200);
  });
});
