/**
 * SPEC §6 across machines: three Switchboard processes on one real Redis. Server-side subscribe,
 * unsubscribe and disconnect reach the user's sockets on every machine within 1 s and count them
 * all; `revoke` refuses every older credential everywhere, and is kept where Redis does not evict
 * it; broadcast reaches every machine.
 * (The registry, unanswered calls and draining: server-api-registry.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { getTicket, loginSession, readJson, type TestServer } from "./support/server.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { api, mintToken, tokenSocket } from "./support/server-api.ts";

let cluster: TestCluster;
let A: TestServer, B: TestServer, C: TestServer;
const clients = new Set<TestClient>();
const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  cluster = await startCluster(["node-a", "node-b", "node-c"]);
  [A, B, C] = cluster.nodes as [TestServer, TestServer, TestServer];
}, 30_000);
afterAll(async () => {
  await closeAll(clients);
  await cluster?.stop();
});

/** A token for an app user, minted by the API (any process). */
const token = (user: string) => mintToken(A, user);

/** A socket of `user` on `server`, by first-message auth. */
const socket = (server: TestServer, user: string, jwt?: string) => tokenSocket(clients, server, A, user, jwt);

describe("POST /api/subscribe and /api/unsubscribe reach every socket of the user on every machine", () => {
  test("4 sockets on 3 machines: each gets `subscribed`, presence counts them, publications reach them; unsubscribe undoes it", async () => {
    const user = unique("u");
    const room = unique("room:srv");
    const socks = [await socket(A, user), await socket(B, user), await socket(B, user), await socket(C, user)];
    const watcher = await socket(C, unique("w"));
    await watcher.subscribe(room);
    const other = await socket(A, unique("other")); // another user's socket: untouched

    const started = Date.now();
    const sub = await api(B, "POST", "/api/subscribe", { user, topic: room });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(sub).toMatchObject({ status: 200, body: { sockets: 4 } });
    expect(sub.body.unanswered).toBeUndefined();
    for (const s of socks) {
      const frame = await s.nextType("subscribed");
      expect(frame).toEqual({ type: "subscribed", topic: room, seq: 0, epoch: expect.any(String) });
    }
    const join = await watcher.next((f) => f.type === "presence.join" && f.user.id === user);
    expect(join.topic).toBe(room);
    const presence = await api(A, "GET", `/api/presence/${room}`);
    expect(presence.body.members).toContainEqual({ user: { id: user, name: user }, connections: 4 });
    expect((await api(C, "GET", `/api/presence/${room}/stats`)).body).toEqual({ topic: room, users: 2, connections: 5 });

    const published = await api(A, "POST", "/api/publish", { topic: room, data: { n: 1 } });
    expect(published.status).toBe(202);
    for (const s of socks) expect((await s.waitMessages(room, 1))[0]!.data).toEqual({ n: 1 });

    // A second subscribe finds them subscribed already: counted, no second `subscribed` frame.
    expect((await api(C, "POST", "/api/subscribe", { user, topic: room })).body).toEqual({ sockets: 4 });

    await socks[3]!.request({ type: "unsubscribe", topic: room }); // one left on its own
    const unsub = await api(C, "POST", "/api/unsubscribe", { user, topic: room });
    expect(unsub).toMatchObject({ status: 200, body: { sockets: 3 } });
    for (const s of socks.slice(0, 3)) expect(await s.nextType("unsubscribed")).toEqual({ type: "unsubscribed", topic: room, reason: "server" });
    await watcher.next((f) => f.type === "presence.leave" && f.user.id === user);
    await api(A, "POST", "/api/publish", { topic: room, data: { n: 2 } });
    await watcher.waitMessages(room, 2);
    await Bun.sleep(200);
    for (const s of socks) expect(s.messages.get(room)?.length).toBe(1);
    for (const s of socks) expect(s.ofType("subscribed").length).toBe(1);
    expect(other.ofType("subscribed")).toEqual([]);
    expect((await api(A, "GET", `/api/presence/${room}/stats`)).body).toEqual({ topic: room, users: 1, connections: 1 });

    // The client may subscribe again on its own: checked as a client's subscribe.
    expect((await socks[0]!.subscribe(room)).type).toBe("ack");
  });

  test("a user with no open socket anywhere: sockets 0, nothing else happens", async () => {
    const room = unique("room:none");
    expect((await api(A, "POST", "/api/subscribe", { user: unique("nobody"), topic: room })).body).toEqual({ sockets: 0 });
    expect((await api(A, "POST", "/api/unsubscribe", { user: unique("nobody"), topic: room })).body).toEqual({ sockets: 0 });
    expect((await api(A, "GET", `/api/presence/${room}/stats`)).body).toEqual({ topic: room, users: 0, connections: 0 });
  });
});

describe("POST /api/disconnect closes the user's sockets on every machine with 4003", () => {
  test("without revoke: every socket closes 4003 within 1 s; the same credential connects again", async () => {
    const user = unique("u");
    const jwt = await token(user);
    const socks = [await socket(A, user, jwt), await socket(B, user, jwt), await socket(C, user, jwt)];
    const bystander = await socket(B, unique("b"));
    const started = Date.now();
    const res = await api(C, "POST", "/api/disconnect", { user });
    expect(res).toMatchObject({ status: 200, body: { sockets: 3 } });
    for (const s of socks) {
      const close = await s.waitClose(1500);
      expect(close.code).toBe(4003);
    }
    expect(Date.now() - started).toBeLessThan(1500);
    expect(bystander.isOpen).toBe(true);
    const again = await socket(A, user, jwt);
    expect(again.isOpen).toBe(true);
  });

  test("with revoke: sessions, tickets and tokens issued up to now are refused on every machine; new ones work from the next second", async () => {
    // A built-in user, so a session cookie and a ticket exist besides tokens.
    const session = await loginSession(A, "carol");
    const ticket = await getTicket(A, session.cookie);
    const oldToken = await token(session.user.id);
    const apiTicket = (await api(B, "POST", "/api/tickets", { user: session.user })).body.ticket as string;
    const open = [await socket(B, session.user.id, oldToken), await socket(C, session.user.id, oldToken)];
    const cookieSocket = await TestClient.connect(A.wsUrl, { cookie: session.cookie });
    clients.add(cookieSocket);

    const res = await api(A, "POST", "/api/disconnect", { user: session.user.id, revoke: true });
    expect(res).toMatchObject({ status: 200, body: { sockets: 3 } });
    for (const s of [...open, cookieSocket]) expect((await s.waitClose(1500)).code).toBe(4003);

    for (const server of [A, B, C]) {
      const cookie = new TestClient(server.wsUrl, { cookie: session.cookie });
      clients.add(cookie);
      expect((await cookie.waitClose()).code).toBe(1006); // the upgrade is refused (401)
      const viaToken = new TestClient(server.wsUrl);
      clients.add(viaToken);
      await viaToken.waitOpen();
      viaToken.send({ type: "auth", token: oldToken });
      expect((await viaToken.waitClose()).code).toBe(4001);
    }
    for (const t of [ticket, apiTicket]) {
      const byTicket = new TestClient(`${C.wsUrl}?ticket=${encodeURIComponent(t)}`);
      clients.add(byTicket);
      expect((await byTicket.waitClose()).code).toBe(1006);
    }
    expect((await readJson(await fetch(`${B.url}/auth/me`, { headers: { Cookie: session.cookie } }))).status).toBe(401);

    // Credentials issued from the next second on work.
    const second = Math.floor(Date.now() / 1000);
    while (Math.floor(Date.now() / 1000) === second) await Bun.sleep(20);
    const fresh = await socket(C, session.user.id);
    expect(fresh.isOpen).toBe(true);
    const relogged = await loginSession(B, "carol");
    const cookieAgain = await TestClient.connect(C.wsUrl, { cookie: relogged.cookie });
    clients.add(cookieAgain);
    expect(cookieAgain.isOpen).toBe(true);
  });

  test("a revoke whose call never reached a machine still closes that machine's sockets within ~2 s", async () => {
    const user = unique("u");
    const jwt = await token(user);
    const onB = await socket(B, user, jwt);
    // The revocation as /api/disconnect stores it, with no control message: as if B missed the call.
    const atS = Math.floor(Date.now() / 1000);
    expect(await cluster.redis.command("ZADD", "sb:{revocations}:users", "GT", String(atS), user)).toBe(":1");
    const started = Date.now();
    expect((await onB.waitClose(4000)).code).toBe(4003);
    expect(Date.now() - started).toBeLessThan(3500);
  });
});

describe("POST /api/broadcast across machines", () => {
  test("one publication per topic reaches subscribers on every machine; bad topics get their own error", async () => {
    const [t1, t2] = [unique("room:b1"), unique("room:b2")];
    const s1 = await socket(A, unique("u"));
    const s2 = await socket(C, unique("u"));
    await s1.subscribe(t1);
    await s2.subscribe(t2);
    const res = await api(B, "POST", "/api/broadcast", { topics: [t1, "bad topic!", t2, "nons:x"], data: { hi: 1 } });
    expect(res.status).toBe(202);
    expect(res.body.results).toEqual([
      { topic: t1, seq: 1, epoch: expect.any(String) },
      { topic: "bad topic!", error: { code: "bad_request", message: expect.any(String) } },
      { topic: t2, seq: 1, epoch: expect.any(String) },
      { topic: "nons:x", error: { code: "forbidden", message: expect.any(String) } },
    ]);
    expect((await s1.waitMessages(t1, 1))[0]).toMatchObject({ topic: t1, seq: 1, from: "server", data: { hi: 1 } });
    expect((await s2.waitMessages(t2, 1))[0]).toMatchObject({ topic: t2, seq: 1, from: "server", data: { hi: 1 } });
    // History in Redis, read on another machine: the broadcast's message, then after it nothing.
    const history = await api(C, "GET", `/api/history/${t1}`);
    expect(history.body).toEqual({ topic: t1, epoch: res.body.results[0].epoch, seq: 1, recovered: false, messages: [s1.messages.get(t1)![0]] });
    expect((await api(A, "GET", `/api/history/${t1}?since=1&epoch=${res.body.results[0].epoch}`)).body).toMatchObject({ seq: 1, recovered: true, messages: [] });
  });
});

describe("revocations by user live where Redis does not evict them", () => {
  test("a Redis whose maxmemory-policy may evict keys without TTL is reported at start with one error line", async () => {
    expect(await cluster.redis.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")).toBe("+OK");
    try {
      const F = await cluster.add("node-f");
      const deadline = Date.now() + 3000;
      while (!F.logs().includes("maxmemory-policy") && Date.now() < deadline) await Bun.sleep(50);
      expect(F.faults()).toEqual([expect.stringContaining("Redis maxmemory-policy is allkeys-lru: under memory pressure Redis may evict revocations")]);
      F.kill();
    } finally {
      await cluster.redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction");
    }
    expect((await api(A, "POST", "/api/disconnect", { user: unique("u"), revoke: true })).status).toBe(200);
    expect(await cluster.redis.command("TTL", "sb:{revocations}:users")).toBe(":-1"); // no TTL
  });
});

afterAll(() => {
  for (const node of cluster?.nodes ?? []) expect(node.faults()).toEqual([]);
});
