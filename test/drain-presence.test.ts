/**
 * SPEC §3 "Limits and membership" (draining) with "presence": a draining process removes its
 * presence entries before it exits, and every other process's subscribers get one
 * `presence.leave` per user that left with it — also for a user whose client never answers the
 * close frame. Entries a closing process still holds are reported as leaves too.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { RedisPresence } from "../src/presence/redis.ts";
import { TestClient, closeAll } from "./support/client.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { TEST_API_KEY, session, type TestServer } from "./support/server.ts";

const DRAIN_MS = 600;
const TOPIC = "room:drain-presence";
let cluster: TestCluster;
const clients = new Set<TestClient>();
const peers = new Set<Socket<undefined>>();

beforeAll(async () => {
  cluster = await startCluster(["drain-a", "drain-b"], { DRAIN_MS: String(DRAIN_MS) });
}, 30_000);
afterAll(async () => {
  for (const p of peers) p.terminate();
  await closeAll(clients);
  await cluster?.stop();
});

/**
 * A WebSocket peer over raw TCP that subscribes to `topic` and then ignores everything the
 * server sends: it never answers the close frame, like a client whose network went away.
 */
async function deafPeer(server: TestServer, cookie: string, topic: string): Promise<Socket<undefined>> {
  let head = "";
  let upgraded!: () => void;
  const ready = new Promise<void>((resolve) => (upgraded = resolve));
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port: server.port,
    socket: {
      data(_s, chunk) {
        if (head.includes("\r\n\r\n")) return; // deaf from here on
        head += new TextDecoder().decode(chunk);
        if (head.includes("\r\n\r\n")) upgraded();
      },
    },
  });
  peers.add(socket);
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  socket.write(
    `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nCookie: ${cookie}\r\n\r\n`,
  );
  await Promise.race([ready, Bun.sleep(3000).then(() => Promise.reject(new Error("no 101 within 3 s")))]);
  if (!head.startsWith("HTTP/1.1 101")) throw new Error(`upgrade refused: ${head.split("\r\n")[0]}`);
  socket.write(maskedText(JSON.stringify({ type: "subscribe", topic, ref: 1 })));
  return socket;
}

/** One masked text frame (RFC 6455 §5.2), payload < 126 bytes. */
function maskedText(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  if (payload.length >= 126) throw new Error("keep it short");
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const frame = new Uint8Array(6 + payload.length);
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  frame.set(mask, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i]! ^ mask[i & 3]!;
  return frame;
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
