/**
 * Regressions found by the black-box audit of SPEC §3 (the WebSocket endpoint), each clause seen
 * by real clients of real processes: one embedded-broker process, and two processes sharing a
 * real Redis.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll, type Frame } from "./support/client.ts";
import { killAllServers, loginSession, session, startServer, type TestServer } from "./support/server.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { Op, RawPeer } from "./support/raw-ws.ts";

const NAMES = ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"];
const USERS = ["alice", "bob", "carol", ...NAMES].map((n) => `${n}:${n}-password`).join(",");

let single: TestServer;
let cluster: TestCluster;
const clients = new Set<TestClient>();

async function connect(server: TestServer, user: string): Promise<TestClient> {
  const s = await session(server, user);
  const c = await TestClient.connect(server.wsUrl, { cookie: s.cookie }, 5000);
  clients.add(c);
  return c;
}

beforeAll(async () => {
  [single, cluster] = await Promise.all([
    startServer({ USERS, RATE_LIMIT_PER_S: "1", RATE_LIMIT_BURST: "2", MAX_CONNECTIONS_PER_USER: "50" }),
    startCluster(["audit-a", "audit-b"], { USERS }),
  ]);
  // Log in once per user and server (argon2 is slow), before the timed parts of the tests.
  for (const user of ["alice", "bob", "carol", ...NAMES]) {
    await Promise.all(
      [single, ...cluster.nodes].map(async (server) => server.sessions.set(user, await loginSession(server, user, `${user}-password`))),
    );
  }
}, 40_000);

afterAll(async () => {
  await closeAll(clients);
  single?.kill();
  await cluster?.stop();
  killAllServers();
});

describe("Presence: a user joins once and leaves when the last socket goes", () => {
  test("sockets that close while their presence join is in flight: on every process, per user, join and leave alternate (never a leave without its join), and no ghost stays", async () => {
    const [A, B] = cluster.nodes as [TestServer, TestServer];
    const topic = `room:audit-presence-${Date.now()}`;
    const watchers = [await connect(A, "alice"), await connect(B, "bob")];
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
    await Bun.sleep(1000);
    for (const w of watchers) {
      const events = new Map<string, string[]>();
      for (const f of w.frames) {
        if (f.topic === topic && (f.type === "presence.join" || f.type === "presence.leave")) {
          const list = events.get(f.user.id) ?? [];
          events.set(f.user.id, [...list, f.type]);
        }
      }
      for (const [user, list] of events) {
        if (user === "alice" || user === "bob") continue;
        const expected = list.map((_, k) => (k % 2 === 0 ? "presence.join" : "presence.leave"));
        expect({ user, list }).toEqual({ user, list: expected });
        expect(list.length % 2).toBe(0);
      }
      const reply = await w.request({ type: "presence", topic });
      const members = (reply.members as { user: { id: string } }[]).map((m) => m.user.id).sort();
      expect(members).toEqual(["alice", "bob"]);
    }
    expect(cluster.nodes.flatMap((n) => n.faults())).toEqual([]);
  }, 20_000);
});

describe("Binary frames are not part of the protocol: close 1003", () => {
  test("a binary first frame (before auth) closes with 1003, as a binary frame after welcome does", async () => {
    const first = await RawPeer.open(single.wsUrl);
    first.sendFrame({ opcode: Op.binary, payload: new TextEncoder().encode('{"type":"auth","token":"x"}') });
    expect((await first.closed()).code).toBe(1003);
    const later = await RawPeer.open(single.wsUrl, { Cookie: (await session(single, "carol")).cookie });
    await later.waitFrame((f) => f.opcode === Op.text);
    later.sendFrame({ opcode: Op.binary, payload: new Uint8Array([1]) });
    expect((await later.closed()).code).toBe(1003);
  });
});

describe("Limits: a frame that finds the bucket empty gets error rate_limited", () => {
  test("with the frame's ref when the frame is at most 1 KB; a larger refused frame is not parsed (no ref)", async () => {
    const c = await connect(single, "carol");
    // Burst 2: the first two frames pass, the next ones find the bucket empty.
    const frames: Record<string, unknown>[] = [
      { type: "ping", ref: 1 },
      { type: "ping", ref: 2 },
      { type: "ping", ref: 3 },
      { type: "publish", topic: "room:audit-rate", data: "x".repeat(2000), ref: 4 },
    ];
    for (const f of frames) c.send(f);
    await c.until(() => c.ofType("error").length >= 2 || undefined, 3000, "two rate_limited errors");
    const errors: Frame[] = c.ofType("error");
    expect(errors.map((e) => [e.code, e.ref])).toEqual([
      ["rate_limited", 3],
      ["rate_limited", undefined],
    ]);
    expect(c.ofType("pong").map((p) => p.ref)).toEqual([1, 2]);
  });
});
