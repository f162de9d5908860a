/**
 * A rolling deploy loses nothing (SPEC "Delivery", close code 1012, draining): Redis and three
 * Switchboard processes behind a round-robin TCP proxy (standing in for Fly's proxy), 60 SDK
 * clients on 3 topics, a server-side publisher at ~200 msg/s. Each process in turn is sent
 * SIGTERM, drains, exits 0 and is started again on its port. Afterwards every client holds every
 * acknowledged publication of its topic exactly once, in `seq` order, and no client was told to
 * reload (`recovered:false` or `resync`).
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { SwitchboardClient } from "../src/client/index.ts";
import { CLUSTER_ENV } from "./support/cluster.ts";
import { startProxy, type TcpProxy } from "./support/proxy.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { recordedClient, waitFor, withCookie, type Recorder } from "./support/sdk.ts";
import { TEST_API_KEY, killAllServers, session, startServer, type TestServer } from "./support/server.ts";

const CLIENTS = 60;
const TOPICS = ["room:deploy-0", "room:deploy-1", "room:deploy-2"];
const USERS = ["alice", "bob", "carol"];
const RATE_PER_S = 200;
const DRAIN_MS = 1000;

let redis: TestRedis | undefined;
let proxy: TcpProxy | undefined;
const clients: SwitchboardClient[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  await proxy?.close();
  killAllServers();
  await redis?.stop();
});

interface Acked {
  seq: number;
  n: number;
}

/**
 * Publishes through the proxy at `ratePerS`, each publication with its own idempotency key and
 * retried with that key until the server acknowledges it, so nothing is published twice.
 * Only acknowledged publications count.
 */
function startPublisher(url: string, ratePerS: number) {
  const acked = new Map<string, Acked[]>(TOPICS.map((t) => [t, []]));
  const inFlight = new Set<Promise<void>>();
  let issued = 0;
  let retries = 0;
  let skipped = 0;
  let running = true;

  const publishOne = async (n: number) => {
    const topic = TOPICS[n % TOPICS.length]!;
    const body = JSON.stringify({ topic, data: { n }, key: `deploy-${n}` });
    const giveUpAt = Date.now() + 10_000;
    while (Date.now() < giveUpAt) {
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${TEST_API_KEY}` },
          body,
          signal: AbortSignal.timeout(2000),
        });
        const text = await res.text();
        if (res.status === 202) {
          acked.get(topic)!.push({ seq: (JSON.parse(text) as { seq: number }).seq, n });
          return;
        }
      } catch {
        // the process behind this connection went away: retry with the same key
      }
      retries++;
      await Bun.sleep(25);
    }
  };

  const started = performance.now();
  const loop = (async () => {
    while (running) {
      // Catch up to the schedule; never more than 200 requests in flight.
      const due = Math.floor(((performance.now() - started) / 1000) * ratePerS);
      while (issued < due && running) {
        if (inFlight.size >= 200) {
          skipped += due - issued;
          issued = due;
          break;
        }
        const p = publishOne(issued++);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      await Bun.sleep(5);
    }
  })();

  return {
    acked,
    get stats() {
      return { issued, retries, skipped, seconds: (performance.now() - started) / 1000 };
    },
    async stop() {
      running = false;
      await loop;
      await Promise.all([...inFlight]);
    },
  };
}

describe("rolling deploy", () => {
  test("3 processes restarted in turn under 200 msg/s: every client holds every acknowledged publication exactly once, in order, never told to reload", async () => {
    const T0 = Date.now();
    const timeline: string[] = [];
    const mark = (what: string) => timeline.push(`${what} ${((Date.now() - T0) / 1000).toFixed(1)}s`);
    redis = await startRedis();
    const env = {
      ...CLUSTER_ENV,
      REDIS_URL: redis.url,
      DRAIN_MS: String(DRAIN_MS),
      HISTORY_SIZE: "2000", // what a client misses while it moves must still be in history
    };
    const nodes: TestServer[] = await Promise.all([0, 1, 2].map((i) => startServer({ ...env, INSTANCE_ID: `deploy-${i}` })));
    const ports = nodes.map((n) => n.port);
    proxy = await startProxy({ upstreams: ports });
    mark("up");

    const cookies = await Promise.all(USERS.map(async (u) => (await session(nodes[0]!, u)).cookie));
    const recorders: { r: Recorder; topic: string }[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const r = recordedClient({
        url: proxy.url("/ws"),
        createWebSocket: withCookie(cookies[i % USERS.length]!),
        reconnect: { baseMs: 50, capMs: 500, restartJitterMs: 500, overloadedMinMs: 200 },
        pingIntervalMs: 1000,
        pingTimeoutMs: 2000,
      });
      clients.push(r.client);
      recorders.push({ r, topic: TOPICS[i % TOPICS.length]! });
    }
    await Promise.all(recorders.map(({ r, topic }) => r.client.subscribe(topic, r.handlers(topic))));
    mark("subscribed");
    const perNode = new Map<string, number>();
    for (const { r } of recorders) perNode.set(r.client.welcome!.instance, (perNode.get(r.client.welcome!.instance) ?? 0) + 1);
    expect(perNode.size).toBe(3); // round-robin spread them over the three

    const publisher = startPublisher(proxy.url("/api/publish", "http"), RATE_PER_S);
    await Bun.sleep(1000);
    const exits: { code: number | null; ms: number }[] = [];
    for (let i = 0; i < nodes.length; i++) {
      const t0 = Date.now();
      const code = await nodes[i]!.stop("SIGTERM", DRAIN_MS + 5000);
      exits.push({ code, ms: Date.now() - t0 });
      mark(`${i} exited`);
      expect(nodes[i]!.faults()).toEqual([]);
      nodes[i] = await startServer({ ...env, INSTANCE_ID: `deploy-${i}`, PORT: String(ports[i]) });
      mark(`${i} back`);
    }
    await Bun.sleep(500);
    await publisher.stop();

    const ackedCount = [...publisher.acked.values()].reduce((sum, list) => sum + list.length, 0);
    const expected = new Map([...publisher.acked].map(([topic, list]) => [topic, [...list].sort((a, b) => a.seq - b.seq)]));
    const holdsAll = ({ r, topic }: { r: Recorder; topic: string }) => {
      const want = expected.get(topic)!;
      return want.length === 0 || r.seqs(topic).includes(want.at(-1)!.seq);
    };
    await waitFor(() => recorders.every(holdsAll), 10_000, "every client to catch up with the last acknowledged publication");

    mark("caught up");
    const reconnects = recorders.map(({ r }) => r.count("open") - 1);
    const stats = publisher.stats;
    console.log(
      `rolling deploy: ${ackedCount} publications acknowledged in ${stats.seconds.toFixed(1)} s ` +
        `(${(ackedCount / stats.seconds).toFixed(0)}/s; per topic ${[...expected.values()].map((l) => l.length).join("/")}; ` +
        `${stats.retries} retries, ${stats.skipped} not sent: generator saturated); drain exits ${exits.map((e) => `${e.code}@${e.ms}ms`).join(", ")}; ` +
        `client reconnects total ${reconnects.reduce((a, b) => a + b, 0)} (min ${Math.min(...reconnects)}, max ${Math.max(...reconnects)}); ` +
        `timeline: ${timeline.join(", ")}`,
    );

    for (const e of exits) {
      expect(e.code).toBe(0);
      expect(e.ms).toBeLessThanOrEqual(DRAIN_MS + 1000 + 200); // + noticing the exit
    }
    expect(ackedCount).toBeGreaterThan(RATE_PER_S * 4); // the publisher really kept going through the deploy
    for (const { r, topic } of recorders) {
      expect(r.recovered.filter((x) => !x.recovered)).toEqual([]);
      expect(r.resyncs).toEqual([]);
      const got = r.messages.get(topic) ?? [];
      // In seq order, each once: seq rises by exactly 1, in one epoch.
      const seqs = got.map((m) => m.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, k) => seqs[0]! + k));
      expect(new Set(got.map((m) => m.epoch)).size).toBe(1);
      // Every acknowledged publication, with the data that was acknowledged for its seq.
      const bySeq = new Map(got.map((m) => [m.seq, m]));
      const missing = expected.get(topic)!.filter((a) => (bySeq.get(a.seq)?.data as { n?: number } | undefined)?.n !== a.n);
      expect(missing).toEqual([]);
    }
    // Every client was moved at least once: every process it could be on drained.
    expect(Math.min(...reconnects)).toBeGreaterThanOrEqual(1);
    for (const n of nodes) expect(n.faults()).toEqual([]);
  }, 60_000);
});
