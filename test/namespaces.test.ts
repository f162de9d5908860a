/**
 * SPEC §5 namespaces, over real sockets on one server with the embedded broker: each option as a
 * client sees it, the `app` rule against a real HTTP server playing the app, and "a refused action
 * leaves no trace". Two processes on Redis: test/namespaces.redis.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll, type Frame } from "./support/client.ts";
import { TEST_API_KEY, apiPublish, readJson, session, startServer, type TestServer, killAllServers } from "./support/server.ts";
import { verifySignature } from "../src/auth/signature.ts";
import { metric } from "./support/metrics.ts";

const WEBHOOK_SECRET = "namespaces-webhook-secret-0123456789abcdef";
export const NAMESPACES = {
  quiet: { subscribe: "any", publish: "any", presence: false },
  big: { subscribe: "any", publish: "any", presence: true, joinLeave: false },
  short: { subscribe: "any", publish: "any", history: { size: 2 } },
  typing: { subscribe: "any", publish: "any", delivery: "ephemeral" },
  orders: { subscribe: "owner", publish: "server" },
  vault: { subscribe: "none", publish: "server" },
  doc: {},
  ask: { subscribe: "app", publish: "app", presence: true },
};

/** The app behind AUTHZ_URL: allows topics ending in `-yes`, refuses `-no`, fails `-down`. */
const asked: { user: string; topic: string; action: string; signed: boolean }[] = [];
const app = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  async fetch(req) {
    const raw = await req.text();
    let signed = true;
    try {
      verifySignature(raw, req.headers.get("switchboard-signature"), WEBHOOK_SECRET);
    } catch {
      signed = false;
    }
    const { user, topic, action } = JSON.parse(raw) as { user: { id: string }; topic: string; action: string };
    asked.push({ user: user.id, topic, action, signed });
    if (topic.includes("-slow")) await Bun.sleep(400);
    if (topic.endsWith("-down")) return new Response("oops", { status: 503 });
    if (topic.endsWith("-no")) return new Response("no", { status: 403 });
    return Response.json({ allow: topic.endsWith("-yes") });
  },
});

let server: TestServer;
const clients = new Set<TestClient>();
let n = 0;
const fresh = (ns: string, suffix = "") => `${ns}:t${++n}-${Math.random().toString(36).slice(2, 6)}${suffix}`;

async function connect(user: string): Promise<TestClient> {
  const c = await TestClient.connect(server.wsUrl, { cookie: (await session(server, user)).cookie });
  clients.add(c);
  return c;
}

const api = (path: string, init: RequestInit = {}) =>
  fetch(`${server.url}${path}`, { ...init, headers: { Authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json", ...init.headers } });

/** Every frame `c` got on `topic` so far, other than replies. */
const onTopic = (c: TestClient, topic: string) => c.frames.filter((f) => f.topic === topic && f.type !== "ack" && f.type !== "error" && f.type !== "presence");

/** After this, every frame the server sent `c` before the barrier has arrived (one socket, one order). */
async function barrier(c: TestClient): Promise<void> {
  expect((await c.request({ type: "ping" })).type).toBe("pong");
}

beforeAll(async () => {
  server = await startServer({ NAMESPACES: JSON.stringify(NAMESPACES), AUTHZ_URL: `http://127.0.0.1:${app.port}/authz`, WEBHOOK_SECRET });
}, 30_000);
afterEach(async () => {
  await closeAll(clients);
  clients.clear();
});
afterAll(async () => {
  server?.kill();
  killAllServers();
  await app.stop(true);
});

describe("built-in namespaces keep the seed's rules", () => {
  test("room: anyone subscribes, publishes and lists members", async () => {
    const [a, b] = [await connect("alice"), await connect("bob")];
    const topic = fresh("room");
    await a.subscribe(topic);
    await b.publish(topic, "hi");
    expect((await a.waitMessages(topic, 1))[0]).toMatchObject({ from: "bob", data: "hi", seq: 1 });
    expect((await b.request({ type: "presence", topic })).members).toEqual([{ user: { id: "alice", name: "alice" }, connections: 1 }]);
  });

  test("user: only the owner subscribes, anyone writes; broadcast: only the server API publishes", async () => {
    const a = await connect("alice");
    expect(await a.request({ type: "subscribe", topic: "user:bob" })).toMatchObject({ type: "error", code: "forbidden" });
    expect(await a.request({ type: "publish", topic: "user:bob", data: 1 })).toMatchObject({ type: "ack", seq: expect.any(Number) });
    const topic = fresh("broadcast");
    await a.subscribe(topic);
    expect(await a.request({ type: "publish", topic, data: 1 })).toMatchObject({ type: "error", code: "forbidden" });
    expect((await apiPublish(server, { topic, data: "news" })).status).toBe(202);
    expect((await a.waitMessages(topic, 1))[0]).toMatchObject({ from: "server", data: "news", seq: 1 });
  });

  test("a topic outside every namespace is forbidden, for the server API too", async () => {
    const a = await connect("alice");
    expect(await a.request({ type: "subscribe", topic: "nowhere:1" })).toMatchObject({ code: "forbidden" });
    expect((await apiPublish(server, { topic: "nowhere:1", data: 1 })).status).toBe(403);
  });
});

describe("presence: false", () => {
  test("subscribing writes no presence: no member list (forbidden), no join frames, 403 on the API", async () => {
    const [a, b] = [await connect("alice"), await connect("bob")];
    const topic = fresh("quiet");
    await a.subscribe(topic);
    await b.subscribe(topic);
    expect(await a.request({ type: "presence", topic })).toMatchObject({ type: "error", code: "forbidden" });
    expect((await api(`/api/presence/${topic}`)).status).toBe(403);
    await b.publish(topic, "after");
    await a.waitMessages(topic, 1);
    expect(onTopic(a, topic).map((f) => f.type)).toEqual(["message"]);
  });

  test("broadcast keeps no presence either (it did in the seed)", async () => {
    const a = await connect("alice");
    const topic = fresh("broadcast");
    await a.subscribe(topic);
    expect(await a.request({ type: "presence", topic })).toMatchObject({ code: "forbidden" });
  });
});

describe("joinLeave: false", () => {
  test("members are listed, but nobody gets presence.join / presence.leave", async () => {
    const [a, b] = [await connect("alice"), await connect("bob")];
    const topic = fresh("big");
    await a.subscribe(topic);
    await b.subscribe(topic);
    const members = (await a.request({ type: "presence", topic })).members as { user: { id: string } }[];
    expect(members.map((m) => m.user.id).sort()).toEqual(["alice", "bob"]);
    expect(await b.request({ type: "unsubscribe", topic })).toMatchObject({ type: "ack" });
    await b.publish(topic, "barrier");
    await a.waitMessages(topic, 1);
    expect(onTopic(a, topic).map((f) => f.type)).toEqual(["message"]);
    expect(((await a.request({ type: "presence", topic })).members as unknown[]).length).toBe(1);
  });
});

describe("history per namespace", () => {
  test("short keeps 2: a since older than that is not recovered; room keeps HISTORY_SIZE", async () => {
    const a = await connect("alice");
    for (const [ns, recoverable] of [["short", false], ["room", true]] as const) {
      const topic = fresh(ns);
      let epoch = "";
      for (let i = 1; i <= 5; i++) epoch = (await a.publish(topic, i)).epoch;
      const old = await a.subscribe(topic, { seq: 1, epoch });
      expect(old.recovered).toBe(recoverable);
      const recent = await a.subscribe(topic, { seq: 3, epoch });
      expect(recent.recovered).toBe(true);
    }
  });

  test("a topic followed here is not resumed from memory past its namespace's size (short keeps 2)", async () => {
    const topic = fresh("short");
    const a = await connect("alice");
    await a.subscribe(topic);
    let epoch = "";
    for (let i = 1; i <= 3; i++) epoch = (await a.publish(topic, i)).epoch;
    // A recovered read while the topic is followed here: the hub may keep what it delivers next.
    const b = await connect("bob");
    expect((await b.subscribe(topic, { seq: 2, epoch })).recovered).toBe(true);
    for (let i = 4; i <= 12; i++) await a.publish(topic, i);
    await a.waitMessages(topic, 12);
    const c = await connect("carol");
    const late = await c.subscribe(topic, { seq: 3, epoch });
    expect(late.recovered).toBe(false);
    await barrier(c);
    expect(onTopic(c, topic).filter((f) => f.type === "message").length).toBe(0);
  });
});

describe("delivery: ephemeral", () => {
  test("no seq or epoch anywhere: subscribe ack, publish ack, message; since is not recovered", async () => {
    const [a, b] = [await connect("alice"), await connect("bob")];
    const topic = fresh("typing");
    const ack = await a.subscribe(topic);
    expect(ack).toEqual({ type: "ack", ref: ack.ref, topic, recovered: false });
    const published = await b.request({ type: "publish", topic, data: { typing: true }, key: "k1" });
    expect(published).toEqual({ type: "ack", ref: published.ref, topic });
    const [message] = await a.waitMessages(topic, 1);
    expect(message).toEqual({ type: "message", topic, from: "bob", data: { typing: true }, ts: expect.any(Number) } as Frame);
    const again = await b.subscribe(topic, { seq: 0, epoch: "x" });
    expect(again).toMatchObject({ recovered: false });
    expect(again.seq).toBeUndefined();
    expect(b.messages.get(topic)).toBeUndefined();
  });

  test("the server API publishes ephemeral frames too: 202 without seq", async () => {
    const a = await connect("alice");
    const topic = fresh("typing");
    await a.subscribe(topic);
    const r = await apiPublish(server, { topic, data: "x" });
    expect(r).toMatchObject({ status: 202, body: { topic } });
    expect(r.body.seq).toBeUndefined();
    expect((await a.waitMessages(topic, 1))[0]).toMatchObject({ from: "server", data: "x" });
  });
});

describe("owner / server / none / caps without a grant", () => {
  test("orders: its owner subscribes, nobody else; only the server publishes", async () => {
    const [a, b] = [await connect("alice"), await connect("bob")];
    await a.subscribe("orders:alice");
    expect(await b.request({ type: "subscribe", topic: "orders:alice" })).toMatchObject({ code: "forbidden" });
    expect(await a.request({ type: "publish", topic: "orders:alice", data: "fake" })).toMatchObject({ code: "forbidden" });
    const r = await apiPublish(server, { topic: "orders:alice", data: "shipped" });
    expect(r.status).toBe(202);
    const [m] = await a.waitMessages("orders:alice", 1);
    expect(m).toMatchObject({ from: "server", data: "shipped", seq: r.body.seq });
  });

  test("vault (none): nobody subscribes; doc (caps): nothing without a grant", async () => {
    const a = await connect("alice");
    for (const frame of [
      { type: "subscribe", topic: "vault:1" },
      { type: "publish", topic: "vault:1", data: 1 },
      { type: "presence", topic: "vault:1" },
      { type: "subscribe", topic: "doc:1" },
      { type: "publish", topic: "doc:1", data: 1 },
      { type: "subscribe", topic: "doc:1", since: { seq: 0, epoch: "x" } },
    ]) {
      expect(await a.request(frame)).toMatchObject({ type: "error", code: "forbidden" });
    }
    expect((await apiPublish(server, { topic: "vault:1", data: "sealed" })).status).toBe(202);
  });
});

describe("app: the application decides (AUTHZ_URL)", () => {
  test("its yes allows, its no is forbidden, its outage is unavailable; calls are signed and cached", async () => {
    asked.length = 0;
    const a = await connect("alice");
    const yes = fresh("ask", "-yes");
    const no = fresh("ask", "-no");
    const down = fresh("ask", "-down");
    expect(await a.request({ type: "subscribe", topic: yes })).toMatchObject({ type: "ack" });
    expect(await a.request({ type: "subscribe", topic: no })).toMatchObject({ type: "error", code: "forbidden" });
    expect(await a.request({ type: "subscribe", topic: down })).toMatchObject({ type: "error", code: "unavailable" });
    expect(await a.request({ type: "publish", topic: yes, data: 1 })).toMatchObject({ type: "ack", seq: 1 });
    // Cached: asking again costs no call. Reading presence is asked as `subscribe`.
    expect(await a.request({ type: "subscribe", topic: yes })).toMatchObject({ type: "ack" });
    expect(await a.request({ type: "presence", topic: yes })).toMatchObject({ type: "presence" });
    expect(asked).toEqual([
      { user: "alice", topic: yes, action: "subscribe", signed: true },
      { user: "alice", topic: no, action: "subscribe", signed: true },
      { user: "alice", topic: down, action: "subscribe", signed: true },
      { user: "alice", topic: yes, action: "publish", signed: true },
    ]);
    expect(await metric(server, "switchboard_authz_requests_total", { outcome: "allow" })).toBeGreaterThanOrEqual(2);
    expect(await metric(server, "switchboard_authz_requests_total", { outcome: "deny" })).toBeGreaterThanOrEqual(1);
    expect(await metric(server, "switchboard_authz_requests_total", { outcome: "unavailable" })).toBeGreaterThanOrEqual(1);
  });

  test("the server API is never asked", async () => {
    asked.length = 0;
    expect((await apiPublish(server, { topic: fresh("ask", "-no"), data: 1 })).status).toBe(202);
    expect(asked).toEqual([]);
  });
});

describe("a refused action leaves no trace", () => {
  test("a refused publish is neither delivered nor stored (the next seq is 1)", async () => {
    const a = await connect("alice");
    const topic = fresh("broadcast");
    await a.subscribe(topic);
    for (let i = 0; i < 3; i++) expect(await a.request({ type: "publish", topic, data: i })).toMatchObject({ code: "forbidden" });
    const r = await apiPublish(server, { topic, data: "first" });
    expect(r.body.seq).toBe(1);
    await a.waitMessages(topic, 1);
    expect(a.messages.get(topic)!.map((m) => m.data)).toEqual(["first"]);
  });

  test("a refused subscribe delivers nothing and lists nobody", async () => {
    const [a, b] = [await connect("alice"), await connect("bob")];
    expect(await a.request({ type: "subscribe", topic: "orders:bob" })).toMatchObject({ code: "forbidden" });
    const ask = fresh("ask", "-no");
    expect(await a.request({ type: "subscribe", topic: ask })).toMatchObject({ code: "forbidden" });
    await b.subscribe("orders:bob");
    await apiPublish(server, { topic: "orders:bob", data: "secret" });
    await b.waitMessages("orders:bob", 1);
    await barrier(a);
    expect(a.messages.size).toBe(0);
    const members = await readJson(await api(`/api/presence/${ask}`));
    expect(members.body).toEqual({ topic: ask, members: [] });
  });

  test("a subscribe the app allows after its socket closed writes no presence (no ghost member)", async () => {
    const topic = fresh("ask", "-slow-yes");
    const c = await connect("carol");
    c.send({ type: "subscribe", topic, ref: 1 });
    await Bun.sleep(50);
    await c.closeAndWait();
    await Bun.sleep(700); // the app answered (400 ms) and whatever followed is done
    expect(asked.some((q) => q.topic === topic)).toBe(true);
    const members = await readJson(await api(`/api/presence/${topic}`));
    expect(members.body).toEqual({ topic, members: [] });
  });
});

describe("GET /api/presence with a cookie follows the presence rule", () => {
  test("room: 200; another's inbox or a namespace without presence: 403", async () => {
    const cookie = (await session(server, "alice")).cookie;
    const get = (topic: string) => fetch(`${server.url}/api/presence/${topic}`, { headers: { Cookie: cookie } });
    expect((await get(fresh("room"))).status).toBe(200);
    expect((await get("user:bob")).status).toBe(403);
    expect((await get(fresh("quiet"))).status).toBe(403);
    expect((await get(fresh("doc"))).status).toBe(403);
  });
});

describe("the server API follows the namespaces (SPEC §5, §6)", () => {
  const post = (path: string, body: unknown) => api(path, { method: "POST", body: JSON.stringify(body) });

  test("POST /api/subscribe into a caps namespace: the server decides; the client still may not publish there", async () => {
    const a = await connect("alice");
    const topic = fresh("doc");
    expect(await readJson(await post("/api/subscribe", { user: "alice", topic }))).toMatchObject({ status: 200, body: { sockets: 1 } });
    expect(await a.next((f) => f.type === "subscribed" && f.topic === topic)).toMatchObject({ seq: 0, epoch: expect.any(String) });
    await apiPublish(server, { topic, data: "for alice" });
    expect((await a.waitMessages(topic, 1))[0]).toMatchObject({ from: "server", data: "for alice" });
    expect(await a.request({ type: "publish", topic, data: 1 })).toMatchObject({ code: "forbidden" });
  });

  test("POST /api/subscribe to an ephemeral topic: `subscribed` without a position, then its frames", async () => {
    const a = await connect("alice");
    const topic = fresh("typing");
    await post("/api/subscribe", { user: "alice", topic });
    const subscribed = await a.next((f) => f.type === "subscribed" && f.topic === topic);
    expect(subscribed).toEqual({ type: "subscribed", topic });
    await apiPublish(server, { topic, data: "x" });
    expect((await a.waitMessages(topic, 1))[0]).toMatchObject({ data: "x" });
  });

  test("POST /api/broadcast: an ephemeral topic's entry has no seq; a topic outside the namespaces gets its own error", async () => {
    const typing = fresh("typing");
    const roomTopic = fresh("room");
    const r = await readJson(await post("/api/broadcast", { topics: [typing, roomTopic, "nowhere:1"], data: 1 }));
    expect(r.status).toBe(202);
    expect(r.body.results).toEqual([
      { topic: typing },
      { topic: roomTopic, seq: 1, epoch: expect.any(String) },
      { topic: "nowhere:1", error: { code: "forbidden", message: expect.any(String) } },
    ]);
  });

  test("GET /api/history: the namespace's size; an ephemeral topic keeps nothing", async () => {
    const topic = fresh("short");
    for (let i = 1; i <= 5; i++) await apiPublish(server, { topic, data: i });
    const r = await readJson(await api(`/api/history/${topic}`));
    expect(r.body).toMatchObject({ topic, seq: 5, recovered: false });
    expect(r.body.messages.map((m: Frame) => m.data)).toEqual([4, 5]);
    const typing = fresh("typing");
    await apiPublish(server, { topic: typing, data: 1 });
    expect((await readJson(await api(`/api/history/${typing}`))).body).toEqual({ topic: typing, epoch: "", seq: 0, recovered: false, messages: [] });
  });

  test("GET /api/presence/:topic/stats where the namespace keeps no presence: 403", async () => {
    expect((await api(`/api/presence/${fresh("quiet")}/stats`)).status).toBe(403);
    expect((await api(`/api/presence/${fresh("big")}/stats`)).status).toBe(200);
  });
});
