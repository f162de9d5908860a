/**
 * The demo's private-room endpoints (src/http/demo-private.ts) from outside, on a real server
 * started as shipped (development, demo users, no NAMESPACES): what they refuse (cross-origin 403,
 * not signed in 401, bad body 400, unknown user 404, a room the inviter is not in 403), what a
 * ticket or token they mint allows over a real socket, that an invitation subscribes the
 * invitee's open sockets, and that a configured deployment has neither the routes nor the namespace.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeAll, TestClient } from "./support/client.ts";
import { readJson, session, startServer, type TestServer } from "./support/server.ts";

let server: TestServer;
const clients: TestClient[] = [];

beforeAll(async () => {
  server = await startServer();
}, 30_000);
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
});

/** A same-origin, cookie-authenticated POST as the page sends it (`cookie: null`: signed out). */
async function post(path: string, body: unknown, user: string | null, headers: Record<string, string> = {}) {
  const cookie: Record<string, string> = user === null ? {} : { Cookie: (await session(server, user)).cookie };
  const res = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Origin: server.origin, ...cookie, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return readJson(res);
}

async function newRoom(user: string, name = "plans"): Promise<{ topic: string; grant: string }> {
  const res = await post("/demo/rooms", { name }, user);
  expect(res.status).toBe(201);
  return res.body;
}

function connect(query: string): TestClient {
  const client = new TestClient(`${server.wsUrl}?${query}`);
  clients.push(client);
  return client;
}

describe("refusals: nothing is created, granted or subscribed", () => {
  test("another origin → 403, also with the cookie; no Origin but a cross-site fetch → 403", async () => {
    const { topic, grant } = await newRoom("alice");
    for (const [path, body] of [["/demo/rooms", { name: "x" }], ["/demo/invite", { topic, user: "bob", grant }], ["/demo/ticket", { grants: [] }], ["/demo/token", { grants: [] }]] as const) {
      const res = await post(path, body, "alice", { Origin: "http://evil.example" });
      expect([path, res.status, res.body.error.code]).toEqual([path, 403, "forbidden"]);
    }
    const cookie = (await session(server, "alice")).cookie;
    const res = await fetch(`${server.url}/demo/invite`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Cookie: cookie, "Sec-Fetch-Site": "cross-site" },
      body: JSON.stringify({ topic, user: "bob", grant }),
    });
    expect(res.status).toBe(403);
    await res.body?.cancel();
  });

  test("not signed in → 401", async () => {
    for (const path of ["/demo/rooms", "/demo/invite", "/demo/ticket", "/demo/token"]) {
      const res = await post(path, { grants: [] }, null);
      expect([path, res.status, res.body.error.code]).toEqual([path, 401, "unauthorized"]);
    }
  });

  test("a bad body → 400", async () => {
    const { topic, grant } = await newRoom("alice");
    const bad: [string, unknown][] = [
      ["/demo/rooms", "not json"],
      ["/demo/rooms", { name: "no spaces allowed" }],
      ["/demo/rooms", { name: "x", extra: 1 }],
      ["/demo/invite", { topic, user: "bob" }],
      ["/demo/invite", { topic: "room:lobby", user: "bob", grant }],
      ["/demo/invite", { topic, user: 7, grant }],
      ["/demo/ticket", { grants: "all" }],
      ["/demo/token", {}],
    ];
    for (const [path, body] of bad) {
      const res = await post(path, body, "alice");
      expect([path, body, res.status, res.body.error.code]).toEqual([path, body, 400, "bad_request"]);
    }
  });

  test("an unknown user → 404", async () => {
    const { topic, grant } = await newRoom("alice");
    const res = await post("/demo/invite", { topic, user: "mallory", grant }, "alice");
    expect([res.status, res.body.error.code]).toEqual([404, "not_found"]);
  });

  test("inviting to a room you are not in → 403: no grant, someone else's grant, a forged one, another room's", async () => {
    const mine = await newRoom("alice");
    const other = await newRoom("alice", "other");
    const forged = `${mine.grant.slice(0, -4)}AAAA`;
    // carol watches: a refused invitation must not reach her.
    const carol = connect(`ticket=${(await post("/demo/ticket", { grants: [] }, "carol")).body.ticket}`);
    await carol.welcome();
    for (const [who, grant] of [["bob", mine.grant], ["alice", forged], ["alice", other.grant], ["bob", "not-a-grant"]] as const) {
      const res = await post("/demo/invite", { topic: mine.topic, user: "carol", grant }, who);
      expect([who, res.status, res.body.error.code]).toEqual([who, 403, "forbidden"]);
    }
    await Bun.sleep(300);
    expect(carol.frames.filter((f) => f.type !== "welcome")).toEqual([]);
  });
});

describe("what the grants give", () => {
  test("an invitation puts the grant in the invitee's inbox and subscribes its open socket; its tickets carry the room", async () => {
    const { topic, grant } = await newRoom("alice");
    const bob = connect(`ticket=${(await post("/demo/ticket", { grants: [] }, "bob")).body.ticket}`);
    await bob.welcome();
    // Before: the room is forbidden to bob's socket (its ticket carries no grant).
    expect(await bob.request({ type: "subscribe", topic })).toMatchObject({ type: "error", code: "forbidden" });

    const res = await post("/demo/invite", { topic, user: "bob", grant }, "alice");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ topic, user: "bob", sockets: 1 });
    const invite = await bob.next((f) => f.type === "message" && f.topic === "user:bob");
    expect(invite).toMatchObject({ from: "server", data: { type: "private-invite", topic, by: "alice" } });
    expect(await bob.next((f) => f.type === "subscribed")).toMatchObject({ type: "subscribed", topic });

    // The open socket reads but may not write until it takes the grant in-band (refresh).
    expect(await bob.request({ type: "publish", topic, data: { text: "before" } })).toMatchObject({ type: "error", code: "forbidden" });
    const token = await post("/demo/token", { grants: [invite.data.grant] }, "bob");
    expect(token.status).toBe(200);
    expect(token.body.expiresIn).toBe(300); // TOKEN_TTL_S: page JavaScript holds it
    expect(await bob.request({ type: "refresh", token: token.body.token })).toMatchObject({ type: "ack" });
    expect(await bob.publish(topic, { text: "after" })).toMatchObject({ type: "ack", seq: 1 });

    // A new connection with a ticket carrying the grant may subscribe; carol's may not, nor with bob's grant.
    const again = connect(`ticket=${(await post("/demo/ticket", { grants: [invite.data.grant] }, "bob")).body.ticket}`);
    await again.welcome();
    expect(await again.subscribe(topic)).toMatchObject({ type: "ack", topic, seq: 1 });
    const carol = connect(`ticket=${(await post("/demo/ticket", { grants: [invite.data.grant, grant] }, "carol")).body.ticket}`);
    await carol.welcome();
    expect(await carol.request({ type: "subscribe", topic })).toMatchObject({ type: "error", code: "forbidden" });
    expect(await carol.request({ type: "presence", topic })).toMatchObject({ type: "error", code: "forbidden" });
    // The demo's usual rights stay: rooms, direct messages, its own inbox.
    expect(await carol.subscribe("room:lobby")).toMatchObject({ type: "ack" });
    expect(await carol.publish("user:alice", { text: "hi" })).toMatchObject({ type: "ack" });
  });
});

describe("only the demo as shipped", () => {
  test("with USERS (or NAMESPACES, or production) the routes are 404 and the namespace does not exist", async () => {
    const configured = await startServer({ USERS: "alice:alice-password" });
    try {
      const res = await fetch(`${configured.url}/demo/rooms`, { method: "POST", headers: { "Content-Type": "application/json", Origin: configured.origin }, body: "{}" });
      expect(res.status).toBe(404);
      await res.body?.cancel();
      const page = await (await fetch(`${configured.url}/`)).text();
      expect(page).not.toContain("data-private-rooms");
      expect(page).toContain('id="private-form"');
      const alice = new TestClient(configured.wsUrl, { cookie: (await session(configured, "alice")).cookie });
      clients.push(alice);
      await alice.welcome();
      const refused = await alice.request({ type: "subscribe", topic: "private:plans-0123456789ab" });
      expect(refused).toMatchObject({ type: "error", code: "forbidden" });
      expect(refused.message).toContain("no namespace");
    } finally {
      configured.kill();
    }
  }, 30_000);
});
