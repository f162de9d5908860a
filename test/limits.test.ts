/**
 * SPEC §3 "Limits and membership" and the connection caps of "The WebSocket endpoint":
 * frame size, the per-socket rate limit, slow consumers, and MAX_CONNECTIONS*.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll, type Frame } from "./support/client.ts";
import { RawPeer, upgradeStatus } from "./support/raw-ws.ts";
import { TEST_API_KEY, session, startServer, type TestServer, killAllServers } from "./support/server.ts";

const MAX_PAYLOAD = 1024;
const RATE = 20;
const BURST = 20;
const BACKPRESSURE_LIMIT = 256 * 1024;

let small: TestServer; // MAX_PAYLOAD_BYTES and rate limit
let slow: TestServer; // BACKPRESSURE_LIMIT_BYTES
let capped: TestServer; // per-user and per-IP caps
let full: TestServer; // MAX_CONNECTIONS
let tight: TestServer; // RATE_LIMIT_PER_S=1, RATE_LIMIT_BURST=2
const clients = new Set<TestClient>();
const raws = new Set<RawPeer>();

beforeAll(async () => {
  [small, slow, capped, full, tight] = await Promise.all([
    startServer({ MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD), RATE_LIMIT_PER_S: String(RATE), RATE_LIMIT_BURST: String(BURST) }),
    startServer({ BACKPRESSURE_LIMIT_BYTES: String(BACKPRESSURE_LIMIT), RATE_LIMIT_PER_S: "100000", RATE_LIMIT_BURST: "100000" }),
    startServer({ MAX_CONNECTIONS_PER_USER: "2", MAX_CONNECTIONS_PER_IP: "4", MAX_CONNECTIONS: "100" }),
    startServer({ MAX_CONNECTIONS: "2" }),
    startServer({ RATE_LIMIT_PER_S: "1", RATE_LIMIT_BURST: "2" }),
  ]);
}, 30_000);
afterAll(async () => {
  for (const r of raws) r.destroy();
  await closeAll(clients);
  for (const s of [small, slow, capped, full, tight]) s?.kill();
  killAllServers();
});

async function connect(server: TestServer, user: string): Promise<TestClient> {
  const s = await session(server, user);
  const c = await TestClient.connect(server.wsUrl, { cookie: s.cookie });
  clients.add(c);
  return c;
}

/** A publish frame of exactly `bytes` bytes of JSON. */
function publishFrameOf(bytes: number): string {
  const base = JSON.stringify({ type: "publish", topic: "room:big", data: "" });
  return JSON.stringify({ type: "publish", topic: "room:big", data: "x".repeat(bytes - base.length) });
}

describe("MAX_PAYLOAD_BYTES", () => {
  test("a frame of exactly the limit is accepted; one byte more → close 1009", async () => {
    const c = await connect(small, "alice");
    const exact = publishFrameOf(MAX_PAYLOAD);
    expect(exact.length).toBe(MAX_PAYLOAD);
    c.send(exact);
    expect((await c.nextType("ack")).seq).toEqual(expect.any(Number));
    c.send(publishFrameOf(MAX_PAYLOAD + 1));
    expect((await c.waitClose()).code).toBe(1009);
  });
});

describe("rate limit (RATE_LIMIT_PER_S / RATE_LIMIT_BURST)", () => {
  test("a flood gets rate_limited errors (not acted on), then close 4008 about 2 s after the first rejection", async () => {
    const c = await connect(small, "bob");
    const topic = "room:flood";
    await c.subscribe(topic);
    const started = Date.now();
    let ref = 1;
    // ~500 frames/s for at most 5 s, far above RATE_LIMIT_PER_S.
    while (!c.close && Date.now() - started < 5000) {
      for (let i = 0; i < 5 && !c.close; i++) c.send({ type: "publish", topic, data: ref, ref: ref++ });
      await Bun.sleep(10);
    }
    const close = await c.waitClose(1000);
    expect(close.code).toBe(4008);
    const errors = c.ofType("error");
    expect(errors.length).toBeGreaterThan(0);
    // structuredClone: Bun 1.4.5's toMatchObject overwrites the received object's fields with asymmetric matchers.
    for (const e of errors) expect(structuredClone(e)).toMatchObject({ code: "rate_limited", ref: expect.any(Number) });
    const firstErrorAt = c.arrivals[c.frames.indexOf(errors[0]!)]! - c.createdAt;
    const sinceFirstRejection = close.at - firstErrorAt;
    expect(sinceFirstRejection).toBeGreaterThanOrEqual(1800);
    expect(sinceFirstRejection).toBeLessThan(3500);
    // A rejected publish was not acted on: every delivered message had an ack, none had an error.
    const acked = new Set(c.ofType("ack").map((a) => a.ref));
    const rejected = new Set(errors.map((e) => e.ref));
    const delivered = (c.messages.get(topic) ?? []).map((m) => m.data as number);
    for (const d of delivered) {
      expect(rejected.has(d)).toBe(false);
      expect(acked.has(d)).toBe(true);
    }
    expect(delivered.length).toBeLessThan(ref - 1);
  }, 30_000);

  test("2 s without a rejection starts over: a burst, a pause, another burst does not close the socket", async () => {
    const c = await connect(small, "carol");
    const burst = () => Promise.all(Array.from({ length: BURST + 10 }, () => c.request({ type: "ping" })));
    const first = await burst();
    expect(first.filter((f) => f.type === "error" && f.code === "rate_limited").length).toBeGreaterThan(0);
    await Bun.sleep(2200);
    const second = await burst();
    expect(second.filter((f) => f.type === "error" && f.code === "rate_limited").length).toBeGreaterThan(0);
    // Had the first episode's clock kept running, the second burst's rejections would close at once.
    await Bun.sleep(500);
    expect(c.close).toBeNull();
    expect((await c.request({ type: "ping" })).type).toBe("pong");
  }, 30_000);

  test("the rate_limited error carries the frame's ref when the frame is at most 1 KB; a larger refused frame is not parsed (no ref)", async () => {
    const c = await connect(tight, "carol");
    // Burst 2: the first two frames pass, the next ones find the bucket empty.
    const frames: Record<string, unknown>[] = [
      { type: "ping", ref: 1 },
      { type: "ping", ref: 2 },
      { type: "ping", ref: 3 },
      { type: "publish", topic: "room:rate-ref", data: "x".repeat(2000), ref: 4 },
    ];
    for (const f of frames) c.send(f);
    await c.until(() => c.ofType("error").length >= 2 || undefined, 3000, "two rate_limited errors");
    const errors: Frame[] = c.ofType("error");
    expect(errors.map((e) => [e.code, e.ref])).toEqual([
      ["rate_limited", 3],
      ["rate_limited", undefined],
    ]);
    expect(c.ofType("pong").map((p) => p.ref)).toEqual([1, 2]);
  });
});

describe("slow consumers (BACKPRESSURE_LIMIT_BYTES)", () => {
  test("a stalled reader does not delay the other subscribers and is disconnected", async () => {
    const topic = "room:slow";
    const carol = await session(slow, "carol");
    // A raw client that subscribes and then stops reading from its TCP socket.
    const stalled = await RawPeer.open(slow.wsUrl, { Cookie: carol.cookie });
    raws.add(stalled);
    expect(stalled.head.status).toBe(101);
    await stalled.waitJson((f) => f.type === "welcome");
    stalled.sendJson({ type: "subscribe", topic, ref: 1 });
    await stalled.waitJson((f) => f.type === "ack" && f.ref === 1);
    stalled.pause();

    const healthy = await connect(slow, "bob");
    await healthy.subscribe(topic);
    const publisher = await connect(slow, "alice");

    // 500 × ~30 KB ≈ 15 MB: well past the kernel's socket buffers (a few MB on loopback) plus the
    // limit. Published in batches the healthy reader keeps up with (each batch < the limit).
    const N = 500;
    const BATCH = 5;
    const payload = "y".repeat(30_000);
    const started = Date.now();
    for (let b = 0; b < N; b += BATCH) {
      await Promise.all(Array.from({ length: BATCH }, (_, k) => publisher.request({ type: "publish", topic, data: { i: b + k, payload } }, 5000)));
      await healthy.waitMessages(topic, b + BATCH, 5000);
    }
    const msgs = healthy.messages.get(topic)!;
    const elapsed = Date.now() - started;
    expect(msgs.map((m) => m.data.i)).toEqual(Array.from({ length: N }, (_, i) => i));
    // Latency of each message at the healthy subscriber, from the server's own timestamp.
    let worst = 0;
    for (let k = 0; k < healthy.frames.length; k++) {
      const f = healthy.frames[k]!;
      if (f.type === "message" && f.topic === topic) worst = Math.max(worst, healthy.arrivals[k]! - f.ts);
    }
    console.log(`slow consumer: healthy subscriber got ${N} × 30 KB in ${elapsed} ms, worst latency ${worst} ms`);
    expect(worst).toBeLessThan(1500);

    // The stalled socket is gone: its user left the topic's presence.
    const deadline = Date.now() + 5000;
    let members: { user: { name: string } }[] = [];
    while (Date.now() < deadline) {
      const res = await fetch(`${slow.url}/api/presence/${topic}`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } });
      members = ((await res.json()) as { members: typeof members }).members;
      if (!members.some((m) => m.user.name === "carol")) break;
      await Bun.sleep(100);
    }
    expect(members.map((m) => m.user.name)).not.toContain("carol");

    // Reading again, it finds the connection closed (4009 if the server could still say so), short of N messages.
    stalled.resume();
    await stalled.until(() => stalled.ended || stalled.closeFrame !== null, 5000, "the stalled socket to be closed");
    if (stalled.closeFrame) expect(stalled.closeFrame.code).toBe(4009);
    expect(stalled.json().filter((f) => f.type === "message").length).toBeLessThan(N);
    expect((await healthy.request({ type: "ping" })).type).toBe("pong");
  }, 30_000);
});

describe("connection caps, checked before the upgrade", () => {
  test("over MAX_CONNECTIONS_PER_USER → 429", async () => {
    const alice = await session(capped, "alice");
    const a1 = await connect(capped, "alice");
    await connect(capped, "alice");
    expect((await upgradeStatus(capped.wsUrl, { Cookie: alice.cookie })).status).toBe(429);
    // A freed slot can be used again.
    await a1.closeAndWait();
    let status = 0;
    for (let i = 0; i < 20 && status !== 101; i++) {
      status = (await upgradeStatus(capped.wsUrl, { Cookie: alice.cookie })).status;
      if (status !== 101) await Bun.sleep(50);
    }
    expect(status).toBe(101);
  }, 30_000);

  test("over MAX_CONNECTIONS_PER_IP → 429, unauthenticated sockets included", async () => {
    const mine = [...clients].filter((c) => c.ws.url.startsWith(capped.wsUrl));
    await closeAll(mine);
    await Bun.sleep(100);
    // 4 sockets from this IP: three users with one socket each (under the per-user cap of 2) and one
    // socket that has not authenticated yet (it counts from the upgrade on).
    for (const user of ["alice", "bob", "carol"]) await connect(capped, user);
    const anon = new TestClient(capped.wsUrl);
    clients.add(anon);
    await anon.waitOpen();
    const bob = await session(capped, "bob");
    expect((await upgradeStatus(capped.wsUrl, { Cookie: bob.cookie })).status).toBe(429);
    expect((await upgradeStatus(capped.wsUrl, {})).status).toBe(429);
    await anon.closeAndWait();
    let status = 0;
    for (let i = 0; i < 20 && status !== 101; i++) {
      status = (await upgradeStatus(capped.wsUrl, { Cookie: bob.cookie })).status;
      if (status !== 101) await Bun.sleep(50);
    }
    expect(status).toBe(101);
  }, 30_000);

  test("over MAX_CONNECTIONS → 503", async () => {
    await connect(full, "alice");
    await connect(full, "bob");
    const carol = await session(full, "carol");
    expect((await upgradeStatus(full.wsUrl, { Cookie: carol.cookie })).status).toBe(503);
    const c = new TestClient(full.wsUrl, { cookie: carol.cookie });
    clients.add(c);
    expect((await c.waitClose()).code).toBe(1006);
    expect(c.opened).toBe(false);
  }, 30_000);
});

describe("no server faults", () => {
  test("the server logged no error, stack trace or unhandled rejection", async () => {
    await Bun.sleep(50);
    for (const s of [small, slow, capped, full]) expect({ port: s.port, faults: s.faults() }).toEqual({ port: s.port, faults: [] });
  });
});
