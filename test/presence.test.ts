/**
 * Presence as clients see it (SPEC §3 frames `presence`, `presence.join` / `presence.leave`,
 * "Limits and membership"; §2 `GET /api/presence/:topic`): the member list with its connection
 * counts, one join and one leave per user however many sockets it has, the HTTP view, and sockets
 * that close while their join is still in flight on two processes sharing Redis.
 *
 * Presence elsewhere: the Presence implementations (suites/presence.suite.ts via
 * presence.memory/presence.redis.test.ts), a crashed machine's members (multinode.test.ts), a
 * draining process's members (drain/presence.test.ts), writes retried after a Redis outage
 * (redis-outage.test.ts), dead peers (hostile/half-open.test.ts), the browser (browser.test.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { TEST_API_KEY, killAllServers, loginSession, readJson, session, startServer, type TestServer } from "./support/server.ts";

const NAMES = ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"];

let server: TestServer;
let cluster: TestCluster; // two processes sharing a real Redis; users alice, bob and NAMES
const clients = new Set<TestClient>();
let topicCounter = 0;
/** A fresh room per test, so tests never see each other's traffic. */
const room = (name: string) => `room:${name}-${++topicCounter}`;

async function connect(user: string): Promise<TestClient> {
  const s = await session(server, user);
  const c = await TestClient.connect(server.wsUrl, { cookie: s.cookie, origin: server.origin });
  clients.add(c);
  return c;
}

async function connectTo(node: TestServer, user: string): Promise<TestClient> {
  const s = await session(node, user);
  const c = await TestClient.connect(node.wsUrl, { cookie: s.cookie }, 5000);
  clients.add(c);
  return c;
}

async function userId(user: string) {
  return (await session(server, user)).user.id;
}

beforeAll(async () => {
  const USERS = ["alice", "bob", ...NAMES].map((n) => `${n}:${n}-password`).join(",");
  [server, cluster] = await Promise.all([startServer({ INSTANCE_ID: "presence-1" }), startCluster(["presence-a", "presence-b"], { USERS })]);
  // Log in once per user and process (argon2 is slow), before the timed parts of the tests.
  for (const user of ["alice", "bob", ...NAMES]) {
    await Promise.all(cluster.nodes.map(async (node) => node.sessions.set(user, await loginSession(node, user, `${user}-password`))));
  }
}, 40_000);
// Each test closes its sockets, so the per-user cap (MAX_CONNECTIONS_PER_USER) never fills up.
afterEach(async () => {
  await closeAll(clients);
  clients.clear();
});
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  await cluster?.stop();
  killAllServers();
});

describe("presence", () => {
  test("presence → {ref, topic, members:[{user, connections}]}", async () => {
    const topic = room("who");
    const [a1, a2, b] = await Promise.all([connect("alice"), connect("alice"), connect("bob")]);
    await a1.subscribe(topic);
    await a2.subscribe(topic);
    await b.subscribe(topic);
    const reply = await b.request({ type: "presence", topic, ref: 11 });
    expect(reply).toMatchObject({ type: "presence", ref: 11, topic });
    const members = [...reply.members].sort((x: any, y: any) => x.user.name.localeCompare(y.user.name));
    expect(members).toEqual([
      { user: (await session(server, "alice")).user, connections: 2 },
      { user: (await session(server, "bob")).user, connections: 1 },
    ]);
  });

  test("presence.join / presence.leave once per user, however many sockets it has", async () => {
    const topic = room("joins");
    const observer = await connect("carol");
    await observer.subscribe(topic);
    const alice = (await session(server, "alice")).user;
    const aboutAlice = (type: string) => (f: { type: string; topic?: string; user?: { name: string } }) =>
      f.type === type && f.topic === topic && f.user?.name === "alice";
    const [a1, a2] = await Promise.all([connect("alice"), connect("alice")]);

    await a1.subscribe(topic);
    expect(await observer.next(aboutAlice("presence.join"))).toEqual({ type: "presence.join", topic, user: alice });
    await a2.subscribe(topic);
    await a1.closeAndWait();
    // A marker through the topic: everything the server sent before it has arrived.
    await observer.publish(topic, "marker-1");
    await observer.waitMessages(topic, 1);
    await Bun.sleep(50);
    expect(observer.frames.filter(aboutAlice("presence.join"))).toHaveLength(1);
    expect(observer.frames.filter(aboutAlice("presence.leave"))).toHaveLength(0);

    await a2.request({ type: "unsubscribe", topic });
    expect(await observer.next(aboutAlice("presence.leave"))).toEqual({ type: "presence.leave", topic, user: alice });
    const after = await observer.request({ type: "presence", topic });
    expect(after.members.map((m: any) => m.user.name)).toEqual(["carol"]);
  });

  test("closing the last socket of a user sends presence.leave", async () => {
    const topic = room("close-leave");
    const observer = await connect("carol");
    await observer.subscribe(topic);
    const bob = await connect("bob");
    await bob.subscribe(topic);
    await observer.next((f) => f.type === "presence.join" && f.user?.name === "bob");
    await bob.closeAndWait();
    expect(await observer.next((f) => f.type === "presence.leave")).toMatchObject({ topic, user: { name: "bob" } });
  });
});

describe("GET /api/presence/:topic", () => {
  test("with the API key → 200 {topic, members}", async () => {
    const topic = room("api-presence");
    const c = await connect("bob");
    await c.subscribe(topic);
    const r = await readJson(await fetch(`${server.url}/api/presence/${topic}`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } }));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ topic, members: [{ user: (await session(server, "bob")).user, connections: 1 }] });
  });

  test("with the cookie of a user allowed to subscribe → 200; of one who is not → 403; none → 401", async () => {
    const alice = await session(server, "alice");
    const topic = room("cookie-presence");
    const ok = await readJson(await fetch(`${server.url}/api/presence/${topic}`, { headers: { Cookie: alice.cookie } }));
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ topic, members: [] });
    // SPEC §5: the built-in `user` namespace keeps no presence, so not even its owner has a list.
    const own = await fetch(`${server.url}/api/presence/user:${alice.user.id}`, { headers: { Cookie: alice.cookie } });
    await own.arrayBuffer();
    expect(own.status).toBe(403);
    const bobInbox = `user:${await userId("bob")}`;
    const denied = await readJson(await fetch(`${server.url}/api/presence/${bobInbox}`, { headers: { Cookie: alice.cookie } }));
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe("forbidden");
    const none = await fetch(`${server.url}/api/presence/${topic}`);
    await none.arrayBuffer();
    expect(none.status).toBe(401);
    const wrongKey = await fetch(`${server.url}/api/presence/${topic}`, { headers: { Authorization: "Bearer wrong-key-0123456789abcdef" } });
    await wrongKey.arrayBuffer();
    expect(wrongKey.status).toBe(401);
  });
});

describe("presence across processes sharing Redis", () => {
  test("sockets that close while their presence join is in flight: on every process, per user, join and leave alternate (never a leave without its join), and no ghost stays", async () => {
    const [A, B] = cluster.nodes as [TestServer, TestServer];
    const topic = `room:presence-race-${Date.now()}`;
    const watchers = [await connectTo(A, "alice"), await connectTo(B, "bob")];
    for (const w of watchers) await w.subscribe(topic);
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        NAMES.map(async (name, i) => {
          const node = cluster.nodes[i % 2]!;
          const c = new TestClient(node.wsUrl, { cookie: (await session(node, name)).cookie });
          clients.add(c);
          await c.welcome(5000);
          c.send({ type: "subscribe", topic, ref: 1 });
          await Bun.sleep((i + round) % 4);
          c.terminate();
        }),
      );
    }
    // Each watcher's presence events per user (the watchers' own excepted).
    const eventsOf = (w: TestClient) => {
      const events = new Map<string, string[]>();
      for (const f of w.frames) {
        if (f.topic === topic && (f.type === "presence.join" || f.type === "presence.leave") && f.user.id !== "alice" && f.user.id !== "bob") {
          events.set(f.user.id, [...(events.get(f.user.id) ?? []), f.type]);
        }
      }
      return events;
    };
    // The last leaves cross processes through Redis: a loaded machine can take more than a second,
    // so wait (up to 10 s more) until every user's events could be complete; the checks below decide.
    await Bun.sleep(1000);
    const settled = () => watchers.every((w) => [...eventsOf(w).values()].every((list) => list.length % 2 === 0));
    for (const until = Date.now() + 10_000; !settled() && Date.now() < until; ) await Bun.sleep(50);
    for (const w of watchers) {
      for (const [user, list] of eventsOf(w)) {
        const expected = list.map((_, k) => (k % 2 === 0 ? "presence.join" : "presence.leave"));
        expect({ user, list }).toEqual({ user, list: expected });
        expect(list.length % 2).toBe(0);
      }
      const reply = await w.request({ type: "presence", topic });
      const members = (reply.members as { user: { id: string } }[]).map((m) => m.user.id).sort();
      expect(members).toEqual(["alice", "bob"]);
    }
    expect(cluster.nodes.flatMap((n) => n.faults())).toEqual([]);
  }, 30_000);
});
