/**
 * SPEC §6 on one process (embedded broker): every new /api route's answers and refusals —
 * the API key, bad JSON, oversized lists, bad topics and users, history pages, broadcast
 * idempotency, tickets and tokens for the app's own users. Bad input acts on nothing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { upgradeStatus } from "./support/raw-ws.ts";
import { TEST_API_KEY, killAllServers, postJson, readJson, session, startServer, type TestServer } from "./support/server.ts";

let S: TestServer;
const clients = new Set<TestClient>();
const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
const auth = { Authorization: `Bearer ${TEST_API_KEY}` };

beforeAll(async () => {
  S = await startServer({ HISTORY_SIZE: "5", TOKEN_TTL_S: "120", TICKET_TTL_S: "20" });
});
afterAll(async () => {
  await closeAll(clients);
  expect(S.faults()).toEqual([]);
  await S.stop();
  killAllServers();
});

const get = async (path: string, headers: Record<string, string> = auth) => readJson(await fetch(`${S.url}${path}`, { headers }));
const post = async (path: string, body: unknown, headers: Record<string, string> = auth) => readJson(await postJson(S, path, body, headers));

/** The topic's latest seq, read through the API. */
async function seqOf(topic: string): Promise<number> {
  return (await get(`/api/history/${encodeURIComponent(topic)}?limit=1`)).body.seq;
}

const ROUTES: [string, string, unknown][] = [
  ["POST", "/api/broadcast", { topics: ["room:a"], data: 1 }],
  ["GET", "/api/history/room:a", undefined],
  ["GET", "/api/presence/room:a/stats", undefined],
  ["POST", "/api/subscribe", { user: "u", topic: "room:a" }],
  ["POST", "/api/unsubscribe", { user: "u", topic: "room:a" }],
  ["POST", "/api/disconnect", { user: "u" }],
  ["POST", "/api/tickets", { user: { id: "u", name: "U" } }],
  ["POST", "/api/tokens", { user: { id: "u", name: "U" } }],
  ["GET", "/api/topics", undefined],
  ["GET", "/api/info", undefined],
];

describe("the API key", () => {
  test("every route: no key or a wrong key → 401 with a JSON error, and nothing is done", async () => {
    for (const [method, path, body] of ROUTES) {
      for (const headers of [{} as Record<string, string>, { Authorization: "Bearer wrong-key-0123456789abcdef" }, { Authorization: TEST_API_KEY }]) {
        const res = method === "GET" ? await get(path, headers) : await post(path, body, headers);
        expect({ path, status: res.status, body: res.body }).toEqual({ path, status: 401, body: { error: { code: "unauthorized", message: "missing or wrong API key" } } });
      }
    }
    expect(await seqOf("room:a")).toBe(0);
  });

  test("without API_KEY every route answers 404, whatever the method", async () => {
    const bare = await startServer({ API_KEY: undefined });
    try {
      for (const [method, path, body] of ROUTES) {
        const res = method === "GET" ? await readJson(await fetch(`${bare.url}${path}`, { headers: auth })) : await readJson(await postJson(bare, path, body, auth));
        expect({ path, status: res.status, code: res.body.error.code }).toEqual({ path, status: 404, code: "not_found" });
        const other = await readJson(await fetch(`${bare.url}${path}`, { method: method === "GET" ? "DELETE" : "GET" }));
        expect(other.status).toBe(404);
      }
    } finally {
      await bare.stop();
    }
  });
});

describe("bad input: a clear 400/403 and nothing published or changed", () => {
  test("bodies that are not JSON, not objects, or miss fields", async () => {
    for (const [, path] of ROUTES.filter(([m]) => m === "POST")) {
      for (const body of ["{not json", "[]", "null", "{}"]) {
        const res = await post(path, body);
        expect({ path, body, status: res.status, code: res.body?.error?.code }).toEqual({ path, body, status: 400, code: "bad_request" });
        expect(res.text).not.toContain("at ");
      }
    }
  });

  test("a body field the route does not know → 400 naming it, and nothing done: a typo like revoked:true disconnects nobody", async () => {
    const topic = unique("room:typo");
    const alice = await TestClient.connect(S.wsUrl, { cookie: (await session(S, "alice")).cookie });
    clients.add(alice);
    for (const [, path, body] of ROUTES.filter(([m]) => m === "POST")) {
      const res = await post(path, { ...(body as object), tpoic: topic });
      expect({ path, status: res.status, code: res.body?.error?.code }).toEqual({ path, status: 400, code: "bad_request" });
      expect(res.body.error.message).toContain('"tpoic"');
    }
    expect((await post("/api/publish", { topic, data: 1, kye: "k1" })).status).toBe(400);
    const typo = await post("/api/disconnect", { user: "alice", revoked: true });
    expect(typo.status).toBe(400);
    expect(typo.body.error.message).toContain('"revoked"');
    await Bun.sleep(200);
    expect(alice.close).toBeNull();
    expect(await seqOf(topic)).toBe(0);
    // What the data carries is the app's: unknown fields inside it are not the API's business.
    expect((await post("/api/publish", { topic, data: { anything: 1, revoked: true } })).status).toBe(202);
  });

  test("broadcast: an empty list, more than 1000 topics, a bad key → 400, nothing published", async () => {
    const topic = unique("room:bc");
    for (const body of [
      { topics: [], data: 1 },
      { topics: Array.from({ length: 1001 }, (_, i) => (i === 0 ? topic : `room:x${i}`)), data: 1 },
      { topics: [topic], data: 1, key: "" },
      { topics: [topic], data: 1, key: "k".repeat(65) },
      { topics: topic, data: 1 },
    ]) {
      const res = await post("/api/broadcast", body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("bad_request");
    }
    const big = await post("/api/broadcast", { topics: Array.from({ length: 1000 }, (_, i) => (i === 0 ? topic : `room:big${i}`)), data: "x".repeat(68_000) });
    expect(big.status).toBe(413);
    expect(big.body.error).toEqual({ code: "too_large", message: expect.stringContaining("split the broadcast") });
    expect((await post("/api/broadcast", { topics: [], data: 1 })).body.error.message).toContain("at least one");
    expect((await post("/api/broadcast", { topics: Array(1001).fill("room:a"), data: 1 })).body.error.message).toContain("1000");
    expect(await seqOf(topic)).toBe(0);
  });

  test("subscribe / unsubscribe / disconnect: bad users and topics", async () => {
    const cases: [string, unknown, number][] = [
      ["/api/subscribe", { user: "", topic: "room:a" }, 400],
      ["/api/subscribe", { user: 42, topic: "room:a" }, 400],
      ["/api/subscribe", { user: "u".repeat(300), topic: "room:a" }, 400],
      ["/api/subscribe", { user: "u", topic: "bad topic" }, 400],
      ["/api/subscribe", { user: "u", topic: "elsewhere:a" }, 403],
      ["/api/unsubscribe", { user: "u", topic: "x".repeat(129) }, 400],
      ["/api/unsubscribe", { user: "u", topic: "nonamespace" }, 403],
      ["/api/disconnect", { user: "u", revoke: "yes" }, 400],
      ["/api/disconnect", { user: ["u"] }, 400],
    ];
    for (const [path, body, status] of cases) {
      const res = await post(path, body);
      expect({ path, body, status: res.status }).toEqual({ path, body, status });
      expect(typeof res.body.error.message).toBe("string");
    }
  });

  test("tickets and tokens: user without name, bad caps, ttlS past 24 h or not whole", async () => {
    for (const path of ["/api/tickets", "/api/tokens"]) {
      for (const body of [
        { user: "u" },
        { user: { id: "u" } },
        { user: { id: "", name: "U" } },
        // Ids that could never have an inbox (`user:<id>` must be a topic), as app tokens refuse them.
        { user: { id: "a b", name: "U" } },
        { user: { id: "x".repeat(124), name: "U" } },
        { user: { id: "ünï", name: "U" } },
        { user: { id: "u", name: "U" }, caps: { "room:a": ["fly"] } },
        { user: { id: "u", name: "U" }, caps: { "bad pattern!": ["subscribe"] } },
        { user: { id: "u", name: "U" }, caps: ["subscribe"] },
      ]) {
        expect({ path, body, status: (await post(path, body)).status }).toEqual({ path, body, status: 400 });
      }
    }
    for (const ttlS of [0, -1, 86_401, 1.5, "60"]) {
      const res = await post("/api/tokens", { user: { id: "u", name: "U" }, ttlS });
      expect({ ttlS, status: res.status }).toEqual({ ttlS, status: 400 });
    }
    expect((await post("/api/tokens", { user: { id: "u", name: "U" }, ttlS: 86_401 })).body.error.message).toContain("24 h");
  });

  test("queries: limit outside 1..1000, epoch without since, since not a number — an empty or non-decimal one included", async () => {
    for (const path of [
      "/api/topics?limit=0",
      "/api/topics?limit=1001",
      "/api/topics?limit=ten",
      "/api/topics?limit=",
      "/api/topics?limit=1e2",
      "/api/history/room:a?limit=1001",
      "/api/history/room:a?limit=%20",
      "/api/history/room:a?epoch=abc",
      "/api/history/room:a?since=-1&epoch=abc",
      "/api/history/room:a?since=x&epoch=abc",
      // `since=` is not "without since" (nor since 0, which would answer the oldest kept, not the latest)
      "/api/history/room:a?since=",
      "/api/history/room:a?since=&limit=2",
      "/api/history/room:a?since=%20&epoch=abc",
      "/api/history/room:a?since=0x10&epoch=abc",
      "/api/history/room:a?since=1.0&epoch=abc",
      "/api/history/room:a?since=1&epoch=",
    ]) {
      const res = await get(path);
      expect({ path, status: res.status, code: res.body.error.code }).toEqual({ path, status: 400, code: "bad_request" });
    }
    expect((await get("/api/history/bad%20topic")).status).toBe(400);
    expect((await get("/api/history/nons:x")).status).toBe(403);
    expect((await get("/api/presence/nons:x/stats")).status).toBe(403);
  });
});

describe("POST /api/broadcast", () => {
  test("one publication per topic; a topic listed twice publishes once; the same key publishes nothing again", async () => {
    const [t1, t2] = [unique("room:k1"), unique("broadcast:k2")];
    const first = await post("/api/broadcast", { topics: [t1, t2, t1], data: { v: 1 }, key: "order-7" });
    expect(first.status).toBe(202);
    expect(first.body.results).toEqual([
      { topic: t1, seq: 1, epoch: expect.any(String) },
      { topic: t2, seq: 1, epoch: expect.any(String) },
      { topic: t1, error: { code: "bad_request", message: "topic listed twice; published once" } },
    ]);
    const again = await post("/api/broadcast", { topics: [t2, t1], data: { v: 2 }, key: "order-7" });
    expect(again.body.results).toEqual([first.body.results[1], first.body.results[0]]);
    expect(await seqOf(t1)).toBe(1);
    expect(await seqOf(t2)).toBe(1);
  });
});

describe("GET /api/history/:topic", () => {
  test("after since, at most limit; without since the last kept; an old or foreign since → recovered:false and the oldest kept", async () => {
    const topic = unique("user:auth0|h"); // `|` travels URL-encoded
    const path = `/api/history/${encodeURIComponent(topic)}`;
    const empty = await get(path);
    expect(empty.body).toEqual({ topic, epoch: expect.any(String), seq: 0, recovered: false, messages: [] });
    for (let i = 1; i <= 8; i++) expect((await post("/api/publish", { topic, data: i })).status).toBe(202);
    const epoch = (await get(path)).body.epoch;
    const seqs = (body: { messages: { seq: number }[] }) => body.messages.map((m) => m.seq);

    const latest = (await get(`${path}?limit=2`)).body;
    expect(latest).toMatchObject({ topic, epoch, seq: 8, recovered: false });
    expect(seqs(latest)).toEqual([7, 8]);
    expect(seqs((await get(path)).body)).toEqual([4, 5, 6, 7, 8]); // HISTORY_SIZE=5 kept
    expect(latest.messages[1]).toEqual({ type: "message", topic, seq: 8, epoch, from: "server", data: 8, ts: expect.any(Number) });

    const after = (await get(`${path}?since=5&epoch=${epoch}`)).body;
    expect(after).toMatchObject({ seq: 8, recovered: true });
    expect(seqs(after)).toEqual([6, 7, 8]);
    expect(seqs((await get(`${path}?since=5&epoch=${epoch}&limit=1`)).body)).toEqual([6]);
    expect((await get(`${path}?since=8&epoch=${epoch}`)).body).toMatchObject({ recovered: true, messages: [] });

    const trimmed = (await get(`${path}?since=1&epoch=${epoch}&limit=2`)).body;
    expect(trimmed.recovered).toBe(false);
    expect(seqs(trimmed)).toEqual([4, 5]);
    const foreign = (await get(`${path}?since=6&epoch=not-the-epoch`)).body;
    expect(foreign.recovered).toBe(false);
    expect(seqs(foreign)).toEqual([4, 5, 6, 7, 8]);
    const noEpoch = (await get(`${path}?since=6`)).body;
    expect(noEpoch.recovered).toBe(false);
  });
});

describe("POST /api/tickets and /api/tokens: the app's backend mints credentials for its users", () => {
  test("a ticket opens one socket as that user, once; expiresIn is TICKET_TTL_S", async () => {
    const user = { id: `auth0|${unique("t")}`, name: "Ticket User" };
    const res = await post("/api/tickets", { user, caps: { "room:team-1": ["subscribe", "publish"] } });
    expect({ ...res, body: { ...res.body } }).toMatchObject({ status: 200, body: { ticket: expect.any(String), expiresIn: 20 } });
    expect(res.headers.get("cache-control")).toBe("no-store"); // a credential: never cached
    const url = `${S.wsUrl}?ticket=${encodeURIComponent(res.body.ticket)}`;
    const client = await TestClient.connect(url);
    clients.add(client);
    expect(client.frames[0]).toMatchObject({ type: "welcome", user });
    expect((await upgradeStatus(url)).status).toBe(401);
  });

  test("a token authenticates a first-message socket; ttlS defaults to TOKEN_TTL_S and caps travel in it", async () => {
    const user = { id: `ana@example.com-${unique("x")}`, name: "Ana" };
    const caps = { "room:team-1": ["subscribe"] };
    const res = await post("/api/tokens", { user, caps });
    expect({ ...res, body: { ...res.body } }).toMatchObject({ status: 200, body: { token: expect.any(String), expiresIn: 120 } });
    expect(res.headers.get("cache-control")).toBe("no-store");
    const claims = JSON.parse(Buffer.from(res.body.token.split(".")[1], "base64url").toString());
    expect(claims).toMatchObject({ sub: user.id, name: "Ana", caps });
    expect(claims.exp - claims.iat).toBe(120);
    expect((await post("/api/tokens", { user, ttlS: 86_400 })).body.expiresIn).toBe(86_400);

    const client = new TestClient(S.wsUrl);
    clients.add(client);
    await client.waitOpen();
    client.send({ type: "auth", token: res.body.token });
    expect((await client.welcome()).user).toEqual(user);
  });
});

describe("GET /api/topics and /api/info on one process", () => {
  test("topics with subscribers here, by prefix; this process in info", async () => {
    const ns = unique("room:one");
    const res = await post("/api/tokens", { user: { id: "topics-user", name: "T" } });
    const client = new TestClient(S.wsUrl);
    clients.add(client);
    await client.waitOpen();
    client.send({ type: "auth", token: res.body.token });
    await client.welcome();
    await client.subscribe(`${ns}:a`);
    let topics: unknown;
    for (let i = 0; i < 30; i++) {
      topics = (await get(`/api/topics?prefix=${ns}`)).body;
      if ((topics as { topics: unknown[] }).topics.length > 0) break;
      await Bun.sleep(100);
    }
    expect(topics).toEqual({ topics: [{ topic: `${ns}:a`, subscribers: 1 }] });
    const all = (await get("/api/topics")).body.topics as { topic: string; subscribers: number }[];
    expect(all).toContainEqual({ topic: "user:topics-user", subscribers: 1 });
    expect(all.length).toBeLessThanOrEqual(100);
    const info = (await get("/api/info")).body;
    expect(info).toEqual({ instances: [{ id: "test-instance", region: "local", connections: expect.any(Number), topics: expect.any(Number), startedAt: expect.any(Number), draining: false }] });
    expect(info.instances[0].connections).toBeGreaterThanOrEqual(1);
  });
});
