/**
 * SPEC §5 capabilities, over real sockets: app tokens (AUTH_JWT_SECRET, SPEC §4) carrying `caps`
 * get exactly what they grant plus their own inbox; a grant never overrides `none`/`server`, never reaches outside
 * the namespaces, never turns presence on; a grant on an `app` namespace decides without the app.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { apiPublish, session, startServer, type TestServer, killAllServers, TEST_API_KEY } from "./support/server.ts";
import { signHsToken } from "./support/jwks.ts";
import type { Caps } from "../src/auth/caps.ts";

const WEBHOOK_SECRET = "caps-test-webhook-secret-0123456789abcdef";
const AUTH_JWT_SECRET = "caps-test-app-jwt-secret-0123456789abcdef";
const NAMESPACES = {
  doc: { subscribe: "caps", publish: "caps", presence: true },
  quiet: { subscribe: "any", publish: "any", presence: false },
  vault: { subscribe: "none", publish: "server", presence: true },
  ask: { subscribe: "app", publish: "app" },
};

/** The app: refuses everything and counts the questions (a grant must not ask it). */
let asked = 0;
const app = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch() {
    asked++;
    return new Response("no", { status: 403 });
  },
});

let server: TestServer;
const clients = new Set<TestClient>();

beforeAll(async () => {
  server = await startServer({ NAMESPACES: JSON.stringify(NAMESPACES), AUTHZ_URL: `http://127.0.0.1:${app.port}/`, WEBHOOK_SECRET, AUTH_JWT_SECRET });
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

/** A socket of `user` authenticated by an app token whose `caps` claim is `caps`. */
async function withCaps(user: string, caps: Caps): Promise<TestClient> {
  const token = await signHsToken(AUTH_JWT_SECRET, { sub: user, claims: { name: user, caps } });
  const c = new TestClient(server.wsUrl);
  clients.add(c);
  await c.waitOpen();
  c.send({ type: "auth", token });
  await c.welcome();
  return c;
}

async function plain(user: string): Promise<TestClient> {
  const c = await TestClient.connect(server.wsUrl, { cookie: (await session(server, user)).cookie });
  clients.add(c);
  return c;
}

const code = async (c: TestClient, frame: Record<string, unknown>) => {
  const reply = await c.request(frame);
  return reply.type === "error" ? reply.code : reply.type;
};

describe("a credential with caps gets exactly them, plus its own inbox", () => {
  test("room:team-42 granted: that room works, the open room:lobby does not", async () => {
    const a = await withCaps("alice", { "room:team-42": ["subscribe", "publish", "presence"] });
    expect(await code(a, { type: "subscribe", topic: "room:team-42" })).toBe("ack");
    expect(await code(a, { type: "publish", topic: "room:team-42", data: 1 })).toBe("ack");
    expect(await code(a, { type: "presence", topic: "room:team-42" })).toBe("presence");
    expect(await code(a, { type: "subscribe", topic: "room:lobby" })).toBe("forbidden");
    expect(await code(a, { type: "publish", topic: "room:lobby", data: 1 })).toBe("forbidden");
    expect(await code(a, { type: "publish", topic: "user:bob", data: "dm" })).toBe("forbidden");
    // A subscribe with since needs `history`.
    expect(await code(a, { type: "subscribe", topic: "room:team-42", since: { seq: 0, epoch: "x" } })).toBe("forbidden");
  });

  test("its own inbox is joined at welcome and may be resumed with since", async () => {
    const a = await withCaps("alice", {});
    const b = await plain("bob");
    await b.publish("user:alice", "hello");
    expect((await a.waitMessages("user:alice", 1))[0]).toMatchObject({ from: "bob", data: "hello" });
    expect(await code(a, { type: "subscribe", topic: "user:alice", since: { seq: 0, epoch: "x" } })).toBe("ack");
    expect(await code(a, { type: "subscribe", topic: "user:bob" })).toBe("forbidden");
  });

  test("doc:* with subscribe and history: resume with since, no publish, no presence", async () => {
    const topic = `doc:${Math.random().toString(36).slice(2, 8)}`;
    const first = await apiPublish(server, { topic, data: "v1" });
    await apiPublish(server, { topic, data: "v2" });
    const a = await withCaps("alice", { "doc:*": ["subscribe", "history"] });
    const ack = await a.subscribe(topic, { seq: first.body.seq - 1, epoch: first.body.epoch });
    expect(ack.recovered).toBe(true);
    expect((await a.waitMessages(topic, 2)).map((m) => m.data)).toEqual(["v1", "v2"]);
    expect(await code(a, { type: "publish", topic, data: 1 })).toBe("forbidden");
    expect(await code(a, { type: "presence", topic })).toBe("forbidden");
  });
});

describe("odd but valid caps", () => {
  test("an action listed twice (grants merged from several roles) is the action once, not a refused token", async () => {
    const a = await withCaps("erin", { "doc:merged": ["subscribe", "publish", "subscribe", "history", "publish"] });
    expect(await code(a, { type: "subscribe", topic: "doc:merged", since: { seq: 0, epoch: "x" } })).toBe("ack");
    expect(await code(a, { type: "publish", topic: "doc:merged", data: 1 })).toBe("ack");
    expect(await code(a, { type: "presence", topic: "doc:merged" })).toBe("forbidden");
  });

  test("a caps claim that is a string holding JSON (a Cognito custom attribute, Ably's capability claim) is read as that JSON", async () => {
    const a = await withCaps("fay", JSON.stringify({ "doc:s": ["subscribe"] }) as unknown as Caps);
    expect(await code(a, { type: "subscribe", topic: "doc:s" })).toBe("ack");
    expect(await code(a, { type: "subscribe", topic: "doc:other" })).toBe("forbidden");
    const token = await signHsToken(AUTH_JWT_SECRET, { sub: "fay", claims: { caps: "doc:s subscribe" } });
    const bad = new TestClient(server.wsUrl);
    clients.add(bad);
    await bad.waitOpen();
    bad.send({ type: "auth", token });
    expect((await bad.waitClose()).code).toBe(4001);
  });
});

describe("presence is read only with the presence action", () => {
  test("a subscriber granted subscribe without presence gets no presence.join / presence.leave; one with it does", async () => {
    const topic = `doc:${Math.random().toString(36).slice(2, 8)}`;
    const reader = await withCaps("alice", { "doc:*": ["subscribe", "presence"] });
    const blind = await withCaps("carol", { "doc:*": ["subscribe"] });
    expect(await code(reader, { type: "subscribe", topic })).toBe("ack");
    expect(await code(blind, { type: "subscribe", topic })).toBe("ack");
    const joiner = await withCaps("dave", { "doc:*": ["subscribe"] });
    expect(await code(joiner, { type: "subscribe", topic })).toBe("ack");
    await reader.next((f) => f.type === "presence.join" && f.topic === topic && (f.user as { id: string }).id === "dave");
    await joiner.closeAndWait();
    await reader.next((f) => f.type === "presence.leave" && f.topic === topic && (f.user as { id: string }).id === "dave");
    // A message published after both frames went out: once it arrives, blind would have had them.
    await apiPublish(server, { topic, data: "after" });
    await blind.waitMessages(topic, 1);
    expect(blind.frames.filter((f) => f.type === "presence.join" || f.type === "presence.leave")).toEqual([]);
    expect(await code(blind, { type: "presence", topic })).toBe("forbidden");
  });

  test("an in-band refresh that takes presence away stops the frames; one that grants it starts them", async () => {
    const topic = `doc:${Math.random().toString(36).slice(2, 8)}`;
    const a = await withCaps("alice", { "doc:*": ["subscribe", "presence"] });
    expect(await code(a, { type: "subscribe", topic })).toBe("ack");
    const less = await signHsToken(AUTH_JWT_SECRET, { sub: "alice", claims: { name: "alice", caps: { "doc:*": ["subscribe"] } } });
    expect(await code(a, { type: "refresh", token: less })).toBe("ack");
    const j1 = await withCaps("erin", { "doc:*": ["subscribe"] });
    expect(await code(j1, { type: "subscribe", topic })).toBe("ack");
    await apiPublish(server, { topic, data: "after-erin" });
    await a.waitMessages(topic, 1);
    expect(a.frames.filter((f) => f.type === "presence.join")).toEqual([]);
    const more = await signHsToken(AUTH_JWT_SECRET, { sub: "alice", claims: { name: "alice", caps: { "doc:*": ["subscribe", "presence"] } } });
    expect(await code(a, { type: "refresh", token: more })).toBe("ack");
    const j2 = await withCaps("frank", { "doc:*": ["subscribe"] });
    expect(await code(j2, { type: "subscribe", topic })).toBe("ack");
    await a.next((f) => f.type === "presence.join" && (f.user as { id: string }).id === "frank");
  });
});

describe("what a grant never does", () => {
  test("* with every action: not past none or server, not outside the namespaces, not presence where it is off", async () => {
    const a = await withCaps("alice", { "*": ["subscribe", "publish", "presence", "history"] });
    expect(await code(a, { type: "subscribe", topic: "vault:1" })).toBe("forbidden");
    expect(await code(a, { type: "publish", topic: "vault:1", data: 1 })).toBe("forbidden");
    expect(await code(a, { type: "publish", topic: "broadcast:news", data: 1 })).toBe("forbidden");
    expect(await code(a, { type: "subscribe", topic: "nowhere:1" })).toBe("forbidden");
    expect(await code(a, { type: "subscribe", topic: "lobby" })).toBe("forbidden");
    expect(await code(a, { type: "subscribe", topic: "quiet:1" })).toBe("ack");
    expect(await code(a, { type: "presence", topic: "quiet:1" })).toBe("forbidden");
    // …and everything else it grants works, the support agent reading another inbox included.
    expect(await code(a, { type: "subscribe", topic: "user:bob" })).toBe("ack");
    expect(await code(a, { type: "publish", topic: "doc:9", data: 1 })).toBe("ack");
  });

  test("a grant on an app namespace decides without asking the app", async () => {
    asked = 0;
    const a = await withCaps("alice", { "ask:*": ["subscribe", "publish"] });
    expect(await code(a, { type: "subscribe", topic: "ask:1" })).toBe("ack");
    expect(await code(a, { type: "publish", topic: "ask:1", data: 1 })).toBe("ack");
    expect(asked).toBe(0);
    const b = await plain("bob");
    expect(await code(b, { type: "subscribe", topic: "ask:1" })).toBe("forbidden");
    expect(asked).toBe(1);
  });
});

describe("caps change with an in-band refresh (SPEC §4)", () => {
  test("the new token's caps decide from then on", async () => {
    const a = await withCaps("alice", { "room:before": ["subscribe"] });
    expect(await code(a, { type: "subscribe", topic: "room:before" })).toBe("ack");
    expect(await code(a, { type: "subscribe", topic: "room:after" })).toBe("forbidden");
    const token = await signHsToken(AUTH_JWT_SECRET, { sub: "alice", claims: { name: "alice", caps: { "room:after": ["subscribe", "publish"] } } });
    expect(await code(a, { type: "refresh", token })).toBe("ack");
    expect(await code(a, { type: "subscribe", topic: "room:after" })).toBe("ack");
    expect(await code(a, { type: "publish", topic: "room:after", data: 1 })).toBe("ack");
    expect(await code(a, { type: "subscribe", topic: "room:before" })).toBe("forbidden");
  });

  test("a subscription the new caps no longer grant is left (`unsubscribed`, reason caps); the inbox, kept grants and the server API's stay", async () => {
    const a = await withCaps("dora", { "doc:kept": ["subscribe"], "doc:gone": ["subscribe", "presence"] });
    expect(await code(a, { type: "subscribe", topic: "doc:kept" })).toBe("ack");
    expect(await code(a, { type: "subscribe", topic: "doc:gone" })).toBe("ack");
    const subscribed = await fetch(`${server.url}/api/subscribe`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TEST_API_KEY}`, "Content-Type": "application/json" },
      body: JSON.stringify({ user: "dora", topic: "doc:server" }),
    });
    expect(await subscribed.json()).toEqual({ sockets: 1 });
    await a.until(() => a.frames.some((f) => f.type === "subscribed" && f.topic === "doc:server"), 3000, "subscribed");
    const members = async (topic: string) => ((await (await fetch(`${server.url}/api/presence/${topic}`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } })).json()) as { members: unknown[] }).members.length;
    expect(await members("doc:gone")).toBe(1);

    const token = await signHsToken(AUTH_JWT_SECRET, { sub: "dora", claims: { name: "dora", caps: { "doc:kept": ["subscribe"] } } });
    const before = a.frames.length;
    expect(await code(a, { type: "refresh", token })).toBe("ack");
    expect(a.frames.slice(before).filter((f) => f.type === "unsubscribed")).toEqual([{ type: "unsubscribed", topic: "doc:gone", reason: "caps" }]);
    expect(await members("doc:gone")).toBe(0);

    for (const topic of ["doc:gone", "doc:kept", "doc:server", "user:dora"]) expect((await apiPublish(server, { topic, data: topic })).status).toBe(202);
    await a.until(() => a.messages.get("user:dora")?.length === 1, 3000, "the inbox message");
    expect(a.messages.get("doc:kept")?.map((m) => m.data)).toEqual(["doc:kept"]);
    expect(a.messages.get("doc:server")?.map((m) => m.data)).toEqual(["doc:server"]);
    expect(a.messages.get("doc:gone")).toBeUndefined();
    expect(await code(a, { type: "subscribe", topic: "doc:gone" })).toBe("forbidden");
  });
});
