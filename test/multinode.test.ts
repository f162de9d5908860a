/**
 * Many machines (SPEC §0, §3 "Delivery"): three Switchboard processes sharing one real Redis
 * behave as one deployment. A client may connect to any of them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll, type Frame } from "./support/client.ts";
import { upgradeStatus } from "./support/raw-ws.ts";
import { getTicket, loginSession, postJson, type Session, type TestServer } from "./support/server.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";

const USERS = "alice:alice-password,bob:bob-password,carol:carol-password,dave:dave-password";
const LEASE_MS = 3000;

let cluster: TestCluster;
let A: TestServer, B: TestServer, C: TestServer;
const sessions = new Map<string, Session>();
const clients = new Set<TestClient>();
const topic = (name: string) => `room:${name}-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  cluster = await startCluster(["node-a", "node-b", "node-c"], { USERS, PRESENCE_LEASE_MS: String(LEASE_MS) });
  [A, B, C] = cluster.nodes as [TestServer, TestServer, TestServer];
  // One login per user, at A: the session cookie works on every process of the deployment.
  for (const user of ["alice", "bob", "carol", "dave"]) sessions.set(user, await loginSession(A, user, `${user}-password`));
}, 30_000);
afterAll(async () => {
  await closeAll(clients);
  await cluster?.stop();
});

async function connect(server: TestServer, user: string, cookie = sessions.get(user)!.cookie): Promise<TestClient> {
  const client = await TestClient.connect(server.wsUrl, { cookie }, 5000);
  clients.add(client);
  return client;
}

describe("every subscriber on every machine receives every publication once, in one order", () => {
  test("300 clients over 3 processes, publishers on every process at once", async () => {
    const room = topic("fanout");
    const perNode = 100;
    const users = ["alice", "bob", "carol"];
    const subscribers: TestClient[] = [];
    for (const server of [A, B, C]) {
      const batch = await Promise.all(Array.from({ length: perNode }, (_, i) => connect(server, users[i % 3]!)));
      subscribers.push(...batch);
    }
    const acks = await Promise.all(subscribers.map((c) => c.subscribe(room)));
    const start = acks[0]!.seq as number;
    expect(acks.every((a) => a.epoch === acks[0]!.epoch)).toBe(true);

    // One publisher per process (also subscribed), 30 publications each, all in flight at once.
    const publishers = [subscribers[0]!, subscribers[perNode]!, subscribers[2 * perNode]!];
    const perPublisher = 30;
    const replies = await Promise.all(
      publishers.flatMap((p, n) => Array.from({ length: perPublisher }, (_, i) => p.publish(room, { n, i }))),
    );
    const total = publishers.length * perPublisher;
    const expectedSeqs = Array.from({ length: total }, (_, i) => start + i + 1);
    expect(replies.map((r) => r.seq as number).sort((a, b) => a - b)).toEqual(expectedSeqs);

    await Promise.all(subscribers.map((c) => c.waitMessages(room, total, 15_000)));
    await Bun.sleep(200); // a duplicate would show up here
    const reference = subscribers[0]!.messages.get(room)!.map((m) => JSON.stringify(m));
    for (const c of subscribers) {
      const got = c.messages.get(room)!;
      expect(got.length).toBe(total);
      expect(got.map((m) => m.seq)).toEqual(expectedSeqs);
      expect(got.map((m) => JSON.stringify(m))).toEqual(reference);
    }
    await closeAll(subscribers);
  }, 40_000);
});

describe("tickets are single use across machines", () => {
  test("50 concurrent redemptions of one ticket spread over the processes: exactly one succeeds", async () => {
    const ticket = await getTicket(A, sessions.get("alice")!.cookie);
    const servers = [A, B, C];
    const statuses = await Promise.all(
      Array.from({ length: 50 }, (_, i) => upgradeStatus(`${servers[i % 3]!.wsUrl}?ticket=${encodeURIComponent(ticket)}`).then((r) => r.status)),
    );
    expect(statuses.filter((s) => s === 101).length).toBe(1);
    expect(statuses.filter((s) => s === 401).length).toBe(49);
  }, 20_000);
});

describe("logout revokes the session everywhere", () => {
  test("logout through A closes that session's sockets on B and C with 4001 within 1 s; other sessions stay", async () => {
    const doomed = await loginSession(A, "bob", "bob-password");
    const onB = await connect(B, "bob", doomed.cookie);
    const onC = await connect(C, "bob", doomed.cookie);
    const otherSession = await connect(B, "bob");
    const closedAt: number[] = [];
    const closes = [onB, onC].map((c) => c.waitClose(3000).then((info) => (closedAt.push(Date.now()), info)));
    const started = Date.now();
    const res = await postJson(A, "/auth/logout", {}, { Cookie: doomed.cookie, Origin: A.origin });
    expect(res.status).toBe(204);
    const infos = await Promise.all(closes);
    expect(infos.map((i) => i.code)).toEqual([4001, 4001]);
    for (const at of closedAt) expect(at - started).toBeLessThan(1000);
    // The revoked cookie is refused at the upgrade on every machine.
    for (const server of [A, B, C]) expect((await upgradeStatus(server.wsUrl, { Cookie: doomed.cookie })).status).toBe(401);
    await Bun.sleep(100);
    expect(otherSession.isOpen).toBe(true);
  }, 20_000);
});

describe("presence across machines", () => {
  test("presence through C lists users on A and B; kill -9 of a process removes its members within the bound", async () => {
    const room = topic("presence");
    const alice = await connect(A, "alice");
    const bob = await connect(B, "bob");
    const carol = await connect(C, "carol");
    for (const c of [alice, bob, carol]) await c.subscribe(room);
    // The gateway acks a subscribe before the presence entry is written, so poll (bounded).
    const listing = async () => {
      const listed = await carol.request({ type: "presence", topic: room });
      return (listed.members as { user: { name: string }; connections: number }[]).map((m) => `${m.user.name}:${m.connections}`).sort();
    };
    let names = await listing();
    for (const until = Date.now() + 2000; names.length < 3 && Date.now() < until; names = await listing()) await Bun.sleep(20);
    expect(names).toEqual(["alice:1", "bob:1", "carol:1"]);

    const D = await cluster.add("node-d", { USERS, PRESENCE_LEASE_MS: String(LEASE_MS) });
    const dave = await connect(D, "dave");
    await dave.subscribe(room);
    const daveId = sessions.get("dave")!.user.id;
    const isDave = (type: string) => (f: Frame) => f.type === type && f.topic === room && f.user?.id === daveId;
    await carol.next(isDave("presence.join"), 3000, "presence.join of dave");

    D.kill();
    const killedAt = Date.now();
    await carol.next(isDave("presence.leave"), 30_000, "presence.leave of dave");
    const elapsed = Date.now() - killedAt;
    console.log(`members of a kill -9'd process left after ${elapsed} ms (lease ${LEASE_MS} ms)`);
    expect(elapsed).toBeLessThan(LEASE_MS * 2 + 1000);
    const after = await alice.request({ type: "presence", topic: room });
    expect((after.members as { user: { id: string } }[]).some((m) => m.user.id === daveId)).toBe(false);
    expect(alice.ofType("presence.leave").filter((f) => f.user?.id === daveId).length).toBe(1);
  }, 40_000);
});
