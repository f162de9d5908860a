/**
 * SPEC §2 `GET /metrics`: Prometheus text that shows what the server did. Each test scrapes before
 * and after known traffic and checks that every counter moved by exactly that traffic.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { RawPeer } from "./support/raw-ws.ts";
import { apiPublish, getTicket, getToken, postJson, session, startServer, TEST_API_KEY, type TestServer } from "./support/server.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { scrape, type Scrape } from "./support/metrics.ts";
import { frameType, messageTs } from "../src/metrics.ts";
import { messageFrame } from "../src/broker/frame.ts";

let server: TestServer;
const clients = new Set<TestClient>();
const raws = new Set<RawPeer>();

beforeAll(async () => {
  server = await startServer({
    INSTANCE_ID: "metrics-test",
    REGION: "test-region",
    BACKPRESSURE_LIMIT_BYTES: "4096",
    RATE_LIMIT_PER_S: "100000",
    RATE_LIMIT_BURST: "100000",
  });
}, 20_000);
afterAll(async () => {
  for (const r of raws) r.destroy();
  await closeAll(clients);
  server?.kill();
});

function track(c: TestClient): TestClient {
  clients.add(c);
  return c;
}

describe("reading a frame without parsing it", () => {
  test("frameType reads the head; messageTs reads the tail, whatever the data holds", () => {
    const tricky = { text: ',"ts":1}', nested: { ts: 5 } };
    const frame = messageFrame("room:a", 7, "e1", { from: "u1", data: tricky, ts: 1_700_000_000_123 });
    expect(frameType(frame)).toBe("message");
    expect(messageTs(frame)).toBe(1_700_000_000_123);
    expect(JSON.parse(frame).ts).toBe(1_700_000_000_123);
    expect(frameType(JSON.stringify({ type: "presence.join", topic: "t", user: {} }))).toBe("presence.join");
    expect(frameType("[]")).toBe("other");
    expect(messageTs('{"type":"resync","topic":"t","seq":1,"epoch":"e"}')).toBeNaN();
  });
});

describe("GET /metrics after traffic", () => {
  test("connections, frames, publications, deliveries, recoveries, auth failures and closes move by exactly the traffic", async () => {
    const before = await scrape(server);
    const topic = "room:metrics";

    // One socket per auth mode.
    const alice = await session(server, "alice");
    const a = track(await TestClient.connect(server.wsUrl, { cookie: alice.cookie }));
    const b = track(new TestClient(server.wsUrl));
    await b.waitOpen();
    b.send({ type: "auth", token: await getToken(server, "bob") });
    await b.welcome();
    const carol = await session(server, "carol");
    const c = track(await TestClient.connect(`${server.wsUrl}?ticket=${await getTicket(server, carol.cookie)}`));

    await a.subscribe(topic);
    await b.subscribe(topic);
    for (let i = 0; i < 3; i++) await a.publish(topic, { i });
    for (let i = 3; i < 5; i++) expect((await apiPublish(server, { topic, data: { i } })).status).toBe(202);
    await a.waitMessages(topic, 5);
    await b.waitMessages(topic, 5);
    const epoch = a.messages.get(topic)![0]!.epoch as string;

    // Recovery: everything after seq 2 is replayed; an unknown epoch cannot be.
    expect((await c.subscribe(topic, { seq: 2, epoch })).recovered).toBe(true);
    await c.waitMessages(topic, 3);
    expect((await c.subscribe("room:metrics-empty", { seq: 5, epoch: "no-such-epoch" })).recovered).toBe(false);
    expect((await a.request({ type: "ping" })).type).toBe("pong");
    expect((await a.request({ type: "subscribe" })).code).toBe("bad_request");

    // Failures: a bad first-message token (4001), a wrong password.
    const bad = track(new TestClient(server.wsUrl));
    await bad.waitOpen();
    bad.send({ type: "auth", token: "not-a-jwt" });
    expect((await bad.waitClose()).code).toBe(4001);
    expect((await postJson(server, "/auth/login", { username: "alice", password: "wrong" })).status).toBe(401);

    const after = await scrape(server);
    const d = (name: string, labels?: Record<string, string>) => after.delta(before, name, labels);

    expect(after.value("switchboard_info", { instance: "metrics-test", region: "test-region", broker: "memory" })).toBe(1);
    expect(after.value("switchboard_broker_up")).toBe(1);
    expect({
      cookie: after.value("switchboard_connections", { auth: "cookie" }),
      ticket: after.value("switchboard_connections", { auth: "ticket" }),
      token: after.value("switchboard_connections", { auth: "token" }),
    }).toEqual({ cookie: 1, ticket: 1, token: 1 });
    expect({
      cookie: d("switchboard_connections_opened_total", { auth: "cookie" }),
      ticket: d("switchboard_connections_opened_total", { auth: "ticket" }),
      token: d("switchboard_connections_opened_total", { auth: "token" }),
    }).toEqual({ cookie: 1, ticket: 1, token: 1 });

    expect({
      subscribe: d("switchboard_frames_in_total", { type: "subscribe" }),
      publish: d("switchboard_frames_in_total", { type: "publish" }),
      ping: d("switchboard_frames_in_total", { type: "ping" }),
      auth: d("switchboard_frames_in_total", { type: "auth" }),
      invalid: d("switchboard_frames_in_total", { type: "invalid" }),
    }).toEqual({ subscribe: 4, publish: 3, ping: 1, auth: 2, invalid: 1 });
    expect({
      welcome: d("switchboard_frames_out_total", { type: "welcome" }),
      // 5 live × 2 subscribers + 3 replayed to carol
      message: d("switchboard_frames_out_total", { type: "message" }),
      // 4 subscribes + 3 publishes
      ack: d("switchboard_frames_out_total", { type: "ack" }),
      pong: d("switchboard_frames_out_total", { type: "pong" }),
      error: d("switchboard_frames_out_total", { type: "error" }),
    }).toEqual({ welcome: 3, message: 13, ack: 7, pong: 1, error: 1 });

    expect({ ws: d("switchboard_publications_total", { source: "ws" }), api: d("switchboard_publications_total", { source: "api" }) }).toEqual({ ws: 3, api: 2 });
    expect(d("switchboard_deliveries_total")).toBe(10);
    expect(d("switchboard_publish_seconds_count")).toBe(5);
    expect(d("switchboard_delivery_lag_seconds_count")).toBe(5);
    expect(d("switchboard_delivery_lag_seconds_sum")).toBeLessThan(5);
    expect(d("switchboard_delivery_lag_seconds_bucket", { le: "+Inf" })).toBe(5);

    expect({ yes: d("switchboard_recoveries_total", { recovered: "true" }), no: d("switchboard_recoveries_total", { recovered: "false" }) }).toEqual({ yes: 1, no: 1 });
    expect({ token: d("switchboard_auth_failures_total", { reason: "bad_token" }), login: d("switchboard_auth_failures_total", { reason: "bad_credentials" }) }).toEqual({ token: 1, login: 1 });
    expect(d("switchboard_closes_sent_total", { code: "4001" })).toBe(1);
    expect(d("switchboard_connections_closed_total", { code: "4001" })).toBe(1);
    expect(d("switchboard_gap_repairs_total")).toBe(0);
    expect(d("switchboard_slow_consumer_disconnects_total")).toBe(0);

    await closeAll([a, b, c]);
    const closed = await waitForScrape(server, (s) => s.value("switchboard_connections") === 0);
    expect(closed.delta(before, "switchboard_connections_closed_total", { code: "1000" })).toBe(3);
  });

  /** The sockets subscribed to `topic`, from the server API's presence stats. */
  async function subscribedSockets(topic: string): Promise<number> {
    const res = await fetch(`${server.url}/api/presence/${encodeURIComponent(topic)}/stats`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } });
    expect(res.status).toBe(200);
    return ((await res.json()) as { connections: number }).connections;
  }

  test("a slow consumer is disconnected once, and counted once", async () => {
    const topic = "room:metrics-slow";
    const before = await scrape(server);
    const carol = await session(server, "carol");
    const stalled = await RawPeer.open(server.wsUrl, { Cookie: carol.cookie });
    raws.add(stalled);
    await stalled.waitJson((f) => f.type === "welcome");
    stalled.sendJson({ type: "subscribe", topic, ref: 1 });
    await stalled.waitJson((f) => f.type === "ack" && f.ref === 1);
    stalled.pause();

    const publisher = track(await TestClient.connect(server.wsUrl, { cookie: (await session(server, "alice")).cookie }));
    const payload = "z".repeat(30_000);
    // Until the kernel buffers and the 4 KB limit are full: bounded at 600 × 30 KB. Whether the
    // stalled socket is still there is read from the topic's presence, which answers at once
    // (/metrics renders once a second: a scrape per round made this test wait ~10 s).
    for (let sent = 0; sent < 600 && (await subscribedSockets(topic)) > 0; sent += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, k) => publisher.request({ type: "publish", topic, data: { k, payload } }, 5000)));
    }
    const now = await scrape(server);
    expect(now.delta(before, "switchboard_slow_consumer_disconnects_total")).toBe(1);
    stalled.resume();
    await stalled.until(() => stalled.ended || stalled.closeFrame !== null, 5000, "the stalled socket to close");
    const after = await scrape(server);
    expect(after.delta(before, "switchboard_slow_consumer_disconnects_total")).toBe(1);
    expect(after.delta(before, "switchboard_closes_sent_total", { code: "4009" })).toBe(1);
  }, 30_000);
});

describe("labels a client cannot multiply", () => {
  test("a close code the client picks (3000-4999) is counted as code=\"other\", not as a series of its own", async () => {
    const before = await scrape(server);
    // No credential needed: any socket may close with any code of the application range.
    const codes = [3000, 3999, 4321, 4999];
    const sockets = codes.map(() => new TestClient(server.wsUrl));
    for (const c of sockets) await c.waitOpen();
    sockets.forEach((c, i) => c.ws.close(codes[i], "mine"));
    const after = await waitForScrape(server, (s) => s.delta(before, "switchboard_connections_closed_total", { code: "other" }) >= codes.length, 6000);
    expect(after.delta(before, "switchboard_connections_closed_total", { code: "other" })).toBe(codes.length);
    for (const code of codes) expect(after.text).not.toContain(`code="${code}"`);
  });
});

describe("GET /metrics with METRICS_TOKEN", () => {
  test("the token is required; the Bearer scheme is case-insensitive, as on /api", async () => {
    const guarded = await startServer({ METRICS_TOKEN: "metrics-token-1234" });
    try {
      const status = async (authorization?: string) =>
        (await fetch(`${guarded.url}/metrics`, { headers: authorization ? { Authorization: authorization } : {} })).status;
      expect(await status()).toBe(401);
      expect(await status("Bearer wrong")).toBe(401);
      expect(await status("Bearer metrics-token-1234")).toBe(200);
      expect(await status("bearer metrics-token-1234")).toBe(200);
    } finally {
      await guarded.stop();
    }
  });
});

describe("GET /metrics with Redis", () => {
  let redis: TestRedis;
  let node: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    node = await startServer({ REDIS_URL: redis.url, INSTANCE_ID: "metrics-redis" });
  }, 20_000);
  afterAll(async () => {
    node?.kill();
    await redis?.stop();
  });

  test("switchboard_broker_up follows the Redis link: 1, 0 while Redis is down, 1 again after", async () => {
    expect((await scrape(node)).value("switchboard_info", { broker: "redis" })).toBe(1);
    expect((await scrape(node)).value("switchboard_broker_up")).toBe(1);
    await redis.kill();
    await waitForScrape(node, (s) => s.value("switchboard_broker_up") === 0, 8000);
    await redis.restart();
    const back = await waitForScrape(node, (s) => s.value("switchboard_broker_up") === 1, 15_000);
    expect(back.value("switchboard_broker_reconnects_total")).toBeGreaterThanOrEqual(1);
  }, 30_000);
});

/** Scrapes until `cond` holds (bounded); returns that scrape. */
async function waitForScrape(target: { url: string }, cond: (s: Scrape) => boolean, timeoutMs = 3000): Promise<Scrape> {
  const deadline = Date.now() + timeoutMs;
  let last = await scrape(target);
  while (!cond(last)) {
    if (Date.now() > deadline) throw new Error(`metrics did not reach the expected state within ${timeoutMs} ms`);
    await Bun.sleep(100);
    last = await scrape(target);
  }
  return last;
}
