/**
 * SPEC §8 "Work proportional to an answer's size costs in proportion": a `presence` answer, a
 * `since` replay and GET /api/presence with a cookie take rate-limit tokens by size (one per 100
 * members or per 10 replayed messages, at least one), and a replay is paced by the socket's drain
 * instead of ending in 4009. Members are made with first-message tokens signed by the test's
 * SESSION_SECRET (jose), as /auth/token would make them, without 200 password hashes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SignJWT } from "jose";
import { TestClient, closeAll } from "../support/client.ts";
import { RawPeer } from "../support/raw-ws.ts";
import { TEST_SESSION_SECRET, apiPublish, killAllServers, session, startServer, type TestServer } from "../support/server.ts";

let server: TestServer; // RATE_LIMIT_PER_S=1, RATE_LIMIT_BURST=10
let narrow: TestServer; // BACKPRESSURE_LIMIT_BYTES=128 KB
const clients = new Set<TestClient>();

beforeAll(async () => {
  [server, narrow] = await Promise.all([
    startServer({ RATE_LIMIT_PER_S: "1", RATE_LIMIT_BURST: "10", MAX_CONNECTIONS_PER_IP: "1000", MAX_CONNECTIONS: "1000" }),
    startServer({ BACKPRESSURE_LIMIT_BYTES: String(128 * 1024) }),
  ]);
});
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  narrow?.kill();
  killAllServers();
});

const secret = new TextEncoder().encode(TEST_SESSION_SECRET);
function tokenFor(id: string): Promise<string> {
  return new SignJWT({ name: id, sid: `sid-${id}` })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(id)
    .setIssuer("switchboard")
    .setAudience("token")
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(secret);
}

async function member(id: string, topic: string): Promise<TestClient> {
  const c = new TestClient(server.wsUrl);
  clients.add(c);
  await c.waitOpen(10_000);
  c.send({ type: "auth", token: await tokenFor(id) });
  await c.welcome(10_000);
  await c.subscribe(topic);
  return c;
}

/** Sends `n` frames back to back and counts the answers of each type. */
async function burst(c: TestClient, n: number, frame: Record<string, unknown>): Promise<Record<string, number>> {
  const replies = await Promise.all(Array.from({ length: n }, () => c.request(frame)));
  const counts: Record<string, number> = {};
  for (const r of replies) {
    const kind = r.type === "error" ? r.code : r.type;
    counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}

describe("presence answers cost by size", () => {
  test("on a 201-member room a presence answer takes 3 tokens; on a 1-member room 1", async () => {
    for (let i = 0; i < 201; i += 25) await Promise.all(Array.from({ length: Math.min(25, 201 - i) }, (_, j) => member(`m${i + j}`, "room:big")));
    const asker = await member("asker", "room:big");
    const big = await burst(asker, 10, { type: "presence", topic: "room:big" });
    expect(big.presence).toBeGreaterThanOrEqual(3);
    expect(big.presence).toBeLessThanOrEqual(5);
    expect(big.rate_limited).toBe(10 - big.presence!);
    const loner = await member("loner", "room:alone");
    expect(await burst(loner, 8, { type: "presence", topic: "room:alone" })).toEqual({ presence: 8 }); // 2 tokens went to auth and subscribe
  }, 15_000);

  test("GET /api/presence with a cookie: the same budget, 429 with Retry-After past it", async () => {
    const { cookie } = await session(server, "alice");
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${server.url}/api/presence/room:big`, { headers: { Cookie: cookie } });
      statuses.push(res.status);
      if (res.status === 429) expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      await res.arrayBuffer();
    }
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(5);
    expect(statuses.filter((s) => s !== 200).every((s) => s === 429)).toBe(true);
  });
});

describe("replays cost by size and are paced by the drain", () => {
  test("a replay of 100 messages takes 10 tokens: the next frames are rate_limited", async () => {
    let epoch = "";
    for (let i = 0; i < 100; i++) epoch = (await apiPublish(server, { topic: "room:replay", data: i })).body.epoch;
    const c = await member("replayer", "room:other");
    const ack = await c.request({ type: "subscribe", topic: "room:replay", since: { seq: 0, epoch } });
    expect(ack).toMatchObject({ type: "ack", recovered: true, seq: 100 });
    await c.waitMessages("room:replay", 100);
    expect(await burst(c, 3, { type: "ping" })).toEqual({ rate_limited: 3 });
  });

  test("100 messages of 60 KB replay fully to a reader that stalls a moment, through a 128 KB backpressure limit", async () => {
    const data = "x".repeat(60 * 1024);
    let epoch = "";
    for (let i = 0; i < 100; i++) epoch = (await apiPublish(narrow, { topic: "room:fat", data: `${i}:${data}` })).body.epoch;
    const { cookie } = await session(narrow, "bob");
    const raw = await RawPeer.open(narrow.wsUrl, { Cookie: cookie });
    try {
      await raw.waitJson((f) => f.type === "welcome");
      raw.pause(); // a phone on a slow link: the replay must wait for it, not overflow
      raw.sendJson({ type: "subscribe", topic: "room:fat", ref: 1, since: { seq: 0, epoch } });
      await Bun.sleep(500);
      raw.resume();
      // Generous waits: 6 MB through a raw peer on a loaded 2-core machine (alone it takes ~1.3 s).
      await raw.waitJson((f) => f.type === "ack" && f.ref === 1, 20_000);
      expect((await apiPublish(narrow, { topic: "room:fat", data: "live" })).status).toBe(202);
      await raw.waitJson((f) => f.type === "message" && f.seq === 101, 20_000, "the live message after the replay").catch((error: Error) => {
        const last = raw.json().filter((f) => f.type === "message").at(-1)?.seq;
        throw new Error(`${error.message} (last message seq ${last}, close ${JSON.stringify(raw.closeFrame)})`);
      });
      const seqs = raw.json().filter((f) => f.type === "message").map((f) => f.seq);
      expect(seqs).toEqual(Array.from({ length: 101 }, (_, i) => i + 1));
      expect(raw.closeFrame).toBeNull();
      expect(narrow.faults()).toEqual([]);
    } finally {
      raw.destroy();
    }
  }, 30_000);
});
