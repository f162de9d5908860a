/**
 * SPEC §3 "Limits and membership" (draining) with "presence": a draining process removes its
 * presence entries before it exits, and every other process's subscribers get one
 * `presence.leave` per user that left with it — also for a user whose client never answers the
 * close frame. Entries a closing process still holds are reported as leaves too.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeConnection, connectWithin, createConnection } from "../../src/redis/connection.ts";
import { RedisPresence } from "../../src/presence/redis.ts";
import { TestClient, closeAll } from "../support/client.ts";
import { RawPeer } from "../support/raw-ws.ts";
import { startCluster, type TestCluster } from "../support/cluster.ts";
import { TEST_API_KEY, session, type TestServer } from "../support/server.ts";

const DRAIN_MS = 600;
const TOPIC = "room:drain-presence";
let cluster: TestCluster;
const clients = new Set<TestClient>();
const peers = new Set<RawPeer>();

beforeAll(async () => {
  cluster = await startCluster(["drain-a", "drain-b"], { DRAIN_MS: String(DRAIN_MS) });
}, 30_000);
afterAll(async () => {
  for (const p of peers) p.destroy();
  await closeAll(clients);
  await cluster?.stop();
});

/**
 * A raw WebSocket peer that subscribes to `topic` and then ignores everything the server sends:
 * it never answers the close frame, like a client whose network went away.
 */
async function deafPeer(server: TestServer, cookie: string, topic: string): Promise<RawPeer> {
  const peer = await RawPeer.open(server.wsUrl, { Cookie: cookie });
  peers.add(peer);
  if (!peer.upgraded) throw new Error(`upgrade refused: ${peer.head.status}`);
  peer.sendJson({ type: "subscribe", topic, ref: 1 });
  return peer;
}

async function members(server: TestServer, topic: string): Promise<string[]> {
  const res = await fetch(`${server.url}/api/presence/${topic}`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } });
  const body = (await res.json()) as { members: { user: { name: string } }[] };
  return body.members.map((m) => m.user.name).sort();
}

describe("draining and presence", () => {
  test("the draining process's members leave: other processes' subscribers get presence.leave, its entries are gone", async () => {
    const [a, b] = cluster.nodes as [TestServer, TestServer];

    const watcher = await TestClient.connect(b.wsUrl, { cookie: (await session(b, "bob")).cookie });
    clients.add(watcher);
    await watcher.subscribe(TOPIC);

    // alice: a well-behaved client on a; carol: a client on a that never answers the close frame.
    const alice = await TestClient.connect(a.wsUrl, { cookie: (await session(a, "alice")).cookie });
    clients.add(alice);
    await alice.subscribe(TOPIC);
    await deafPeer(a, (await session(a, "carol")).cookie, TOPIC);
    const joined = (name: string) => watcher.ofType("presence.join").some((f) => f.topic === TOPIC && f.user.name === name);
    await watcher.until(() => joined("alice") && joined("carol"), 3000, "the joins of alice and carol");
    expect(await members(b, TOPIC)).toEqual(["alice", "bob", "carol"]);

    const signalled = Date.now();
    const code = await a.stop("SIGTERM", DRAIN_MS + 5000);
    const exitedAfter = Date.now() - signalled;
    expect(code).toBe(0);
    expect(exitedAfter).toBeLessThanOrEqual(DRAIN_MS + 1000 + 200); // + the time to notice the exit
    expect((await alice.waitClose(1000)).code).toBe(1012);

    await watcher.until(() => new Set(watcher.ofType("presence.leave").filter((f) => f.topic === TOPIC).map((f) => f.user.name)).size === 2, 2000, "both leaves");
    const leaves = watcher.ofType("presence.leave").filter((f) => f.topic === TOPIC).map((f) => f.user.name).sort();
    console.log(`drain with presence: exit after ${exitedAfter} ms (DRAIN_MS=${DRAIN_MS}); leaves seen on the other process: ${leaves.join(", ")}`);
    expect(leaves).toEqual(["alice", "carol"]); // once each
    expect(await members(b, TOPIC)).toEqual(["bob"]);
    expect(a.faults()).toEqual([]);
  }, 20_000);

  test("a closing RedisPresence reports the members it still held, and only those (their own leaves never completed)", async () => {
    const redis = createConnection(cluster.redis.url, { name: "drain-presence-test" });
    try {
      await connectWithin(redis, 2000);
      const presence = new RedisPresence({ redis, instanceId: "closing" });
      const reported: string[] = [];
      await presence.start({ onExpired: (topic, user) => reported.push(`${topic} ${user.name}`) });
      const topic = "room:closing";
      const alice = { id: "alice", name: "alice" };
      const bob = { id: "bob", name: "bob" };
      await presence.join(topic, "c1", alice);
      await presence.join(topic, "c2", alice);
      await presence.join(topic, "c3", bob);
      expect(await presence.leave(topic, "c3", bob)).toBe(true); // bob left on his own: announced then
      await presence.close();
      expect(reported).toEqual([`${topic} alice`]); // alice once, for two connections
      const other = new RedisPresence({ redis, instanceId: "other" });
      expect(await other.members(topic)).toEqual([]);
      await other.close();
    } finally {
      await closeConnection(redis);
    }
  }, 10_000);
});
