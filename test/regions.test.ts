/**
 * Cross-region cost, simulated: one machine ("iad") next to Redis, one ("syd") behind a link that
 * adds 80 ms each way (a 160 ms round trip to Redis, about Sydney ↔ Virginia). Every delivery
 * guarantee of SPEC "Delivery" must still hold across the two; what it costs is printed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { freePort, session, spawnServer, startServer, TEST_ENV, type TestServer } from "./support/server.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { startLatencyProxy, type LatencyProxy } from "./support/latency-proxy.ts";
import { scrape } from "./support/metrics.ts";

const ONE_WAY_MS = 80;

let redis: TestRedis;
let far: LatencyProxy;
let iad: TestServer;
let syd: TestServer;
const clients = new Set<TestClient>();

beforeAll(async () => {
  redis = await startRedis();
  far = await startLatencyProxy({ upstream: redis.port, delayMs: ONE_WAY_MS });
  [iad, syd] = await Promise.all([
    startServer({ REDIS_URL: redis.url, INSTANCE_ID: "iad-1", REGION: "iad" }),
    startServer({ REDIS_URL: far.url("redis"), INSTANCE_ID: "syd-1", REGION: "syd" }, { startTimeoutMs: 20_000 }),
  ]);
  await waitReady(syd, 10_000);
}, 40_000);
afterAll(async () => {
  await closeAll(clients);
  iad?.kill();
  syd?.kill();
  await far?.close();
  await redis?.stop();
});

async function waitReady(server: { url: string }, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(1000) }).catch(() => null);
    await res?.arrayBuffer();
    if (res?.status === 200) return;
    await Bun.sleep(20);
  }
  throw new Error(`not ready within ${timeoutMs} ms`);
}

async function connect(server: TestServer, user: string): Promise<TestClient> {
  const c = await TestClient.connect(server.wsUrl, { cookie: (await session(server, user)).cookie }, 5000);
  clients.add(c);
  const region = c.frames.find((f) => f.type === "welcome")!.region;
  expect(region).toBe(server === iad ? "iad" : "syd");
  return c;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Sends a publish and resolves with the ack and how long it took. */
async function timedPublish(c: TestClient, topic: string, data: unknown, key?: string): Promise<{ ack: any; ms: number }> {
  const started = performance.now();
  const ack = await c.request({ type: "publish", topic, data, ...(key ? { key } : {}) }, 5000);
  return { ack, ms: performance.now() - started };
}

describe("delivery across regions (80 ms each way between syd and Redis)", () => {
  test("every subscriber in both regions gets every publication once, in one order, from publishers in both", async () => {
    const topic = "room:regions";
    const [watchIad, watchSyd, pubIad, pubSyd] = await Promise.all([connect(iad, "alice"), connect(syd, "bob"), connect(iad, "carol"), connect(syd, "carol")]);
    await Promise.all([watchIad.subscribe(topic), watchSyd.subscribe(topic)]);
    const N = 6;
    // Both publishers fire everything at once; each socket's frames are handled in order.
    const acks = await Promise.all(
      Array.from({ length: N }, (_, i) => [
        pubIad.request({ type: "publish", topic, data: { from: "iad", i } }, 10_000),
        pubSyd.request({ type: "publish", topic, data: { from: "syd", i } }, 10_000),
      ]).flat(),
    );
    expect(acks.every((a) => a.type === "ack")).toBe(true);
    const [seenIad, seenSyd] = await Promise.all([watchIad.waitMessages(topic, 2 * N, 10_000), watchSyd.waitMessages(topic, 2 * N, 10_000)]);
    await Bun.sleep(3 * ONE_WAY_MS); // nothing extra may follow
    const view = (m: any) => `${m.seq}:${m.data.from}${m.data.i}`;
    expect(watchIad.messages.get(topic)!.map((m) => m.seq)).toEqual(Array.from({ length: 2 * N }, (_, i) => i + 1));
    expect(watchSyd.messages.get(topic)!.map(view)).toEqual(seenIad.map(view));
    expect(seenSyd.length).toBe(2 * N);
    for (const origin of ["iad", "syd"]) {
      expect(seenSyd.filter((m) => m.data.from === origin).map((m) => m.data.i)).toEqual(Array.from({ length: N }, (_, i) => i));
    }
  }, 20_000);

  test("an idempotency key is honoured across regions: the retry elsewhere returns the first seq and publishes nothing", async () => {
    const topic = "room:regions-key";
    const [watch, pubSyd, pubIad] = await Promise.all([connect(iad, "alice"), connect(syd, "bob"), connect(iad, "bob")]);
    await watch.subscribe(topic);
    const first = await timedPublish(pubSyd, topic, "once", "order-42");
    const retry = await timedPublish(pubIad, topic, "once", "order-42");
    expect(retry.ack.seq).toBe(first.ack.seq);
    await watch.waitMessages(topic, 1);
    await Bun.sleep(3 * ONE_WAY_MS);
    expect(watch.messages.get(topic)!.length).toBe(1);
  });

  test("a client that reconnects in the far region resumes with since: everything it missed, in order, then live", async () => {
    const topic = "room:regions-resume";
    const [pub, first] = await Promise.all([connect(iad, "alice"), connect(syd, "bob")]);
    await first.subscribe(topic);
    await pub.publish(topic, 1);
    const [m1] = await first.waitMessages(topic, 1);
    await first.closeAndWait();
    for (let i = 2; i <= 6; i++) await pub.publish(topic, i);
    const again = await connect(syd, "bob");
    const ack = await again.subscribe(topic, { seq: m1!.seq, epoch: m1!.epoch });
    expect(ack.recovered).toBe(true);
    await pub.publish(topic, 7);
    const got = await again.waitMessages(topic, 6, 5000);
    expect(got.map((m) => [m.seq, m.data])).toEqual([2, 3, 4, 5, 6, 7].map((n) => [n, n]));
  });

  test("presence spans regions: a member in syd is listed from iad", async () => {
    const topic = "room:regions-presence";
    const [member, asker] = await Promise.all([connect(syd, "carol"), connect(iad, "alice")]);
    await member.subscribe(topic);
    const deadline = Date.now() + 5000;
    let names: string[] = [];
    while (Date.now() < deadline && !names.includes("carol")) {
      names = ((await asker.request({ type: "presence", topic })).members as { user: { name: string } }[]).map((m) => m.user.name);
      if (!names.includes("carol")) await Bun.sleep(50);
    }
    expect(names).toContain("carol");
  });

  test("the long link breaks: syd re-reads what it missed from history — no gap, no duplicate", async () => {
    const topic = "room:regions-break";
    const [watch, pub] = await Promise.all([connect(syd, "alice"), connect(iad, "bob")]);
    await watch.subscribe(topic);
    await pub.publish(topic, 0);
    await watch.waitMessages(topic, 1, 5000);
    const before = await scrape(syd);
    expect(far.dropAll()).toBeGreaterThan(0);
    // Published while syd's link is down or coming back: pub/sub alone would lose these.
    for (let i = 1; i <= 5; i++) await pub.publish(topic, i);
    await watch.waitMessages(topic, 6, 15_000);
    await pub.publish(topic, 6);
    await watch.waitMessages(topic, 7, 5000);
    await Bun.sleep(3 * ONE_WAY_MS);
    const all = watch.messages.get(topic)!;
    expect(all.map((m) => m.data)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(all.map((m) => m.seq)).toEqual(all.map((_, i) => all[0]!.seq + i));
    expect(watch.ofType("resync")).toEqual([]);
    const after = await scrape(syd);
    expect(after.delta(before, "switchboard_broker_reconnects_total")).toBeGreaterThanOrEqual(1);
  }, 30_000);
});

describe("what a region away from Redis costs", () => {
  test("publish round trip, delivery in each direction and a first subscribe, measured", async () => {
    const topic = "room:regions-cost";
    const [watchIad, watchSyd, pubIad, pubSyd] = await Promise.all([connect(iad, "alice"), connect(syd, "alice"), connect(iad, "bob"), connect(syd, "bob")]);
    const subStart = performance.now();
    await watchSyd.subscribe(topic);
    const firstSubscribeSyd = performance.now() - subStart;
    const subStartIad = performance.now();
    await watchIad.subscribe(topic);
    const firstSubscribeIad = performance.now() - subStartIad;

    const ackIad: number[] = [];
    const ackSyd: number[] = [];
    const N = 8;
    for (let i = 0; i < N; i++) {
      ackIad.push((await timedPublish(pubIad, topic, { from: "iad", i })).ms);
      ackSyd.push((await timedPublish(pubSyd, topic, { from: "syd", i })).ms);
    }
    await Promise.all([watchIad.waitMessages(topic, 2 * N, 10_000), watchSyd.waitMessages(topic, 2 * N, 10_000)]);
    // Arrival minus the publication's ts: all processes share this machine's clock.
    const lag = (c: TestClient, from: string) =>
      c.frames.flatMap((f, k) => (f.type === "message" && f.topic === topic && f.data.from === from ? [c.arrivals[k]! - f.ts] : []));
    const cost = {
      publishAckMs: { iad: Math.round(median(ackIad)), syd: Math.round(median(ackSyd)) },
      deliveryMs: {
        "iad→iad": median(lag(watchIad, "iad")),
        "iad→syd": median(lag(watchSyd, "iad")),
        "syd→iad": median(lag(watchIad, "syd")),
        "syd→syd": median(lag(watchSyd, "syd")),
      },
      firstSubscribeMs: { iad: Math.round(firstSubscribeIad), syd: Math.round(firstSubscribeSyd) },
    };
    console.log(`cross-region cost (${ONE_WAY_MS} ms each way to Redis): ${JSON.stringify(cost)}`);
    // A publish from syd waits one round trip to Redis; iad's does not.
    expect(cost.publishAckMs.syd).toBeGreaterThanOrEqual(2 * ONE_WAY_MS);
    expect(cost.publishAckMs.iad).toBeLessThan(ONE_WAY_MS);
    // Redis → syd is one leg; syd → Redis → syd two; iad sees syd's publications after one leg.
    expect(cost.deliveryMs["iad→syd"]).toBeGreaterThanOrEqual(ONE_WAY_MS);
    expect(cost.deliveryMs["syd→syd"]).toBeGreaterThanOrEqual(2 * ONE_WAY_MS);
    expect(cost.deliveryMs["syd→iad"]).toBeGreaterThanOrEqual(ONE_WAY_MS);
    expect(cost.deliveryMs["iad→iad"]).toBeLessThan(ONE_WAY_MS);
    // The server's own view: syd's delivery-lag histogram sits above one leg.
    const s = await scrape(syd);
    expect(s.value("switchboard_delivery_lag_seconds_count")).toBeGreaterThan(0);
  }, 20_000);

  test("start-up to ready: embedded broker, Redis nearby, Redis 80 ms away", async () => {
    const measure = async (env: Record<string, string | undefined>) => {
      const port = freePort();
      const started = performance.now();
      const spawned = spawnServer({ ...TEST_ENV, ...env, PORT: String(port) });
      try {
        await waitReady({ url: `http://127.0.0.1:${port}` }, 15_000);
        return Math.round(performance.now() - started);
      } catch (error) {
        throw new Error(`${(error as Error).message}; output: ${spawned.stdout()} ${spawned.stderr()}`);
      } finally {
        spawned.proc.kill("SIGKILL");
        await spawned.exited;
      }
    };
    const times = {
      memory: await measure({ INSTANCE_ID: "boot-mem" }),
      redisNear: await measure({ INSTANCE_ID: "boot-near", REDIS_URL: redis.url }),
      redisFar: await measure({ INSTANCE_ID: "boot-far", REDIS_URL: far.url("redis") }),
    };
    console.log(`start-up to /readyz 200 (ms, spawn included): ${JSON.stringify(times)}`);
    for (const ms of Object.values(times)) expect(ms).toBeLessThan(15_000);
  }, 60_000);
});
