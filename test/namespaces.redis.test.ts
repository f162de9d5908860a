/**
 * SPEC §5 namespace options on a deployment: two Switchboard processes sharing a real Redis. What
 * clients on different machines see, and what is (not) written in Redis — the trace a refused
 * action or a namespace without presence or history must not leave.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { TEST_API_KEY, apiPublish, loginSession, postJson, type Session, type TestServer } from "./support/server.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";

const NAMESPACES = {
  quiet: { subscribe: "any", publish: "any", presence: false },
  big: { subscribe: "any", publish: "any", presence: true, joinLeave: false },
  short: { subscribe: "any", publish: "any", history: { size: 2, ttlS: 60 } },
  typing: { subscribe: "any", publish: "any", delivery: "ephemeral" },
};

let cluster: TestCluster;
let A: TestServer, B: TestServer;
const sessions = new Map<string, Session>();
const clients = new Set<TestClient>();
let n = 0;
const fresh = (ns: string) => `${ns}:r${++n}-${Math.random().toString(36).slice(2, 6)}`;

beforeAll(async () => {
  cluster = await startCluster(["ns-a", "ns-b"], { NAMESPACES: JSON.stringify(NAMESPACES) });
  [A, B] = cluster.nodes as [TestServer, TestServer];
  for (const user of ["alice", "bob"]) sessions.set(user, await loginSession(A, user));
}, 30_000);
afterEach(async () => {
  await closeAll(clients);
  clients.clear();
});
afterAll(async () => {
  await closeAll(clients);
  await cluster?.stop();
});

async function connect(server: TestServer, user: string): Promise<TestClient> {
  const c = await TestClient.connect(server.wsUrl, { cookie: sessions.get(user)!.cookie }, 5000);
  clients.add(c);
  return c;
}

/** How many keys Redis holds for the topic: its ordering state and history, and its presence. */
async function keysOf(topic: string): Promise<{ topic: number; presence: number }> {
  const count = async (pattern: string) => Number((await cluster.redis.command("EVAL", "return #redis.call('KEYS', ARGV[1])", "0", pattern)).slice(1));
  return { topic: await count(`sb:{${topic}}:*`), presence: await count(`sb:{p:${topic}}:*`) };
}

describe("presence: false on Redis", () => {
  test("subscribers on two machines: no presence key is written, no join frames, the list is forbidden", async () => {
    const [a, b] = [await connect(A, "alice"), await connect(B, "bob")];
    const topic = fresh("quiet");
    await a.subscribe(topic);
    await b.subscribe(topic);
    await b.publish(topic, "barrier");
    await a.waitMessages(topic, 1);
    expect(a.frames.filter((f) => f.topic === topic && f.type.startsWith("presence"))).toEqual([]);
    expect(await b.request({ type: "presence", topic })).toMatchObject({ code: "forbidden" });
    expect(await keysOf(topic)).toEqual({ topic: 2, presence: 0 }); // ordering state and history only
  });

  test("the built-in broadcast namespace writes no presence either", async () => {
    const a = await connect(A, "alice");
    const topic = fresh("broadcast");
    await a.subscribe(topic);
    expect((await keysOf(topic)).presence).toBe(0);
  });
});

describe("joinLeave: false on Redis", () => {
  test("members on both machines are listed; nobody gets join or leave frames", async () => {
    const [a, b] = [await connect(A, "alice"), await connect(B, "bob")];
    const topic = fresh("big");
    await a.subscribe(topic);
    await b.subscribe(topic);
    await b.request({ type: "unsubscribe", topic });
    await b.subscribe(topic);
    const members = (await a.request({ type: "presence", topic })).members as { user: { id: string } }[];
    expect(members.map((m) => m.user.id).sort()).toEqual(["alice", "bob"]);
    await b.publish(topic, "barrier");
    await a.waitMessages(topic, 1);
    expect(a.frames.filter((f) => f.topic === topic && f.type.startsWith("presence."))).toEqual([]);
  });

  test("room (joinLeave on) still announces across machines", async () => {
    const [a, b] = [await connect(A, "alice"), await connect(B, "bob")];
    const topic = fresh("room");
    await a.subscribe(topic);
    await b.subscribe(topic);
    // alice, a subscriber by then, may hear her own join first (seen once in a full run): wait for bob's.
    const join = await a.next((f) => f.type === "presence.join" && f.topic === topic && f.user.id === "bob");
    expect(join).toMatchObject({ topic, user: { id: "bob", name: "bob" } });
  });
});

describe("delivery: ephemeral on Redis", () => {
  test("a publish on one machine reaches the other without seq; nothing is stored in Redis", async () => {
    const [a, b] = [await connect(A, "alice"), await connect(B, "bob")];
    const topic = fresh("typing");
    await a.subscribe(topic);
    await b.subscribe(topic);
    const ack = await b.request({ type: "publish", topic, data: { x: 1 } });
    expect(ack).toEqual({ type: "ack", ref: ack.ref, topic });
    const [m] = await a.waitMessages(topic, 1);
    expect(m).toEqual({ type: "message", topic, from: "bob", data: { x: 1 }, ts: expect.any(Number) } as never);
    expect((await apiPublish(A, { topic, data: "srv" })).body).toEqual({ topic });
    expect((await b.waitMessages(topic, 2)).map((f) => f.data)).toEqual([{ x: 1 }, "srv"]);
    expect(await keysOf(topic)).toEqual({ topic: 0, presence: 0 });
  });
});

describe("history per namespace on Redis", () => {
  test("short keeps 2 publications: a since before them is not recovered on the other machine", async () => {
    const [a, b] = [await connect(A, "alice"), await connect(B, "bob")];
    const topic = fresh("short");
    let epoch = "";
    for (let i = 1; i <= 5; i++) epoch = (await a.publish(topic, i)).epoch;
    expect(await cluster.redis.command("XLEN", `sb:{${topic}}:log`)).toBe(":2");
    expect(await cluster.redis.command("TTL", `sb:{${topic}}:log`)).toMatch(/^:(5\d|60)$/);
    expect((await b.subscribe(topic, { seq: 2, epoch })).recovered).toBe(false);
    const recent = await b.subscribe(topic, { seq: 3, epoch });
    expect(recent.recovered).toBe(true);
    expect((await b.waitMessages(topic, 2)).map((f) => f.seq)).toEqual([4, 5]);
  });
});

describe("a refused action leaves no trace in Redis", () => {
  test("refused publishes and subscribes write nothing", async () => {
    const b = await connect(B, "bob");
    const topic = fresh("broadcast");
    for (let i = 0; i < 3; i++) expect(await b.request({ type: "publish", topic, data: i })).toMatchObject({ code: "forbidden" });
    const inbox = fresh("user");
    expect(await b.request({ type: "subscribe", topic: inbox })).toMatchObject({ code: "forbidden" });
    expect(await b.request({ type: "subscribe", topic: "secret:x" })).toMatchObject({ code: "forbidden" });
    expect(await keysOf(topic)).toEqual({ topic: 0, presence: 0 });
    expect(await keysOf(inbox)).toEqual({ topic: 0, presence: 0 });
    expect(await keysOf("secret:x")).toEqual({ topic: 0, presence: 0 });
  });
});

describe("server-side subscribe on Redis follows the namespace", () => {
  test("POST /api/subscribe on one machine subscribes sockets on the other; presence off writes no presence", async () => {
    const b = await connect(B, "bob");
    const quiet = fresh("quiet");
    const roomTopic = fresh("room");
    for (const topic of [quiet, roomTopic]) {
      const res = await postJson(A, "/api/subscribe", { user: "bob", topic }, { Authorization: `Bearer ${TEST_API_KEY}` });
      expect(await res.json()).toMatchObject({ sockets: 1 });
      await b.next((f) => f.type === "subscribed" && f.topic === topic);
    }
    expect((await keysOf(quiet)).presence).toBe(0);
    expect((await keysOf(roomTopic)).presence).toBeGreaterThan(0);
  });
});
