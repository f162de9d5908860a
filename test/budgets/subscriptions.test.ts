/**
 * SPEC §8: MAX_SUBSCRIPTIONS_PER_SOCKET, MAX_SUBSCRIPTIONS_PER_USER (per process; the inbox counts
 * toward neither) and TOPIC_CREATIONS_PER_MIN (a publish that brings a topic into existence; past
 * it nothing is stored). Each refusal is `error {ref, code:"limit_exceeded"}`; the socket stays.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "../support/client.ts";
import { apiPublish, killAllServers, loginSession, session, startServer, type TestServer } from "../support/server.ts";
import { startRedis } from "../support/redis.ts";

const NAMES = ["sam", "sue", "cat", "cy", "pat", "obs", "sly"];
let server: TestServer;
const cookies = new Map<string, string>();
const clients = new Set<TestClient>();

beforeAll(async () => {
  server = await startServer({
    USERS: NAMES.map((n) => `${n}:${n}-password`).join(","),
    MAX_SUBSCRIPTIONS_PER_SOCKET: "5",
    MAX_SUBSCRIPTIONS_PER_USER: "8",
    TOPIC_CREATIONS_PER_MIN: "5",
  });
  for (const n of NAMES) cookies.set(n, (await loginSession(server, n, `${n}-password`)).cookie);
});
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  killAllServers();
});

async function connect(user: string): Promise<TestClient> {
  const c = await TestClient.connect(server.wsUrl, { cookie: cookies.get(user)! });
  clients.add(c);
  return c;
}

describe("MAX_SUBSCRIPTIONS_PER_SOCKET", () => {
  test("the sixth topic of a socket is limit_exceeded; the inbox, a repeat and a freed place are fine", async () => {
    const c = await connect("sam");
    for (let i = 0; i < 5; i++) await c.subscribe(`room:s${i}`);
    expect(await c.request({ type: "subscribe", topic: "room:s5" })).toMatchObject({ type: "error", code: "limit_exceeded" });
    await c.subscribe("user:sam"); // its own inbox: counted nowhere
    await c.subscribe("room:s0"); // already held
    await c.request({ type: "unsubscribe", topic: "room:s4" });
    await c.subscribe("room:s5");
    expect(await c.request({ type: "subscribe", topic: "room:s6" })).toMatchObject({ type: "error", code: "limit_exceeded" });
    // The refused topic was not joined: a publication there does not reach the socket.
    expect((await apiPublish(server, { topic: "room:s6", data: "x" })).status).toBe(202);
    expect((await apiPublish(server, { topic: "room:s5", data: "y" })).status).toBe(202);
    await c.waitMessages("room:s5", 1);
    expect(c.messages.get("room:s6")).toBeUndefined();
    expect(c.ofType("pong")).toEqual([]);
    expect(c.close).toBeNull();
  });
});

describe("MAX_SUBSCRIPTIONS_PER_USER", () => {
  test("over all the user's sockets of the process; a closed socket gives its places back", async () => {
    const a = await connect("sue");
    const b = await connect("sue");
    for (let i = 0; i < 5; i++) await a.subscribe(`room:u${i}`);
    for (let i = 5; i < 8; i++) await b.subscribe(`room:u${i}`);
    expect(await b.request({ type: "subscribe", topic: "room:u8" })).toMatchObject({ type: "error", code: "limit_exceeded" });
    const other = await connect("cy"); // another user is not affected
    await other.subscribe("room:u8");
    await a.closeAndWait();
    await Bun.sleep(100);
    await b.subscribe("room:u8");
    await b.subscribe("room:u9");
  });
});

describe("TOPIC_CREATIONS_PER_MIN", () => {
  test("the sixth new topic in a minute is limit_exceeded and nothing is stored", async () => {
    const c = await connect("cat");
    for (let i = 0; i < 5; i++) expect((await c.publish(`room:new${i}`, i)).seq).toBe(1);
    const refused = await c.request({ type: "publish", topic: "room:new5", data: "no" });
    expect(refused).toMatchObject({ type: "error", code: "limit_exceeded" });
    const watcher = await connect("obs");
    expect((await watcher.subscribe("room:new5")).seq).toBe(0); // nothing stored
    // Existing topics are not creations: one of its own, one the server made, one with a subscriber.
    expect((await c.publish("room:new0", "again")).seq).toBe(2);
    expect((await apiPublish(server, { topic: "room:made", data: 1 })).status).toBe(202);
    expect((await c.publish("room:made", "hi")).seq).toBe(2);
    expect((await c.publish("room:new5", "now it has a subscriber")).seq).toBe(1);
    expect(c.close).toBeNull();
  });

  test("subscribing first does not exempt a publish: only another user's subscription makes a topic exist", async () => {
    // subscribe + publish + unsubscribe per topic stored a history for every new topic, uncounted.
    const c = await connect("sly");
    const replies = [];
    for (let i = 0; i < 8; i++) {
      await c.subscribe(`room:sly${i}`);
      replies.push(await c.request({ type: "publish", topic: `room:sly${i}`, data: i }));
      await c.request({ type: "unsubscribe", topic: `room:sly${i}` });
    }
    expect(replies.filter((r) => r.type === "ack").length).toBe(5);
    expect(replies.slice(5).every((r) => r.type === "error" && r.code === "limit_exceeded")).toBe(true);
    const watcher = await connect("obs");
    expect((await watcher.subscribe("room:sly7")).seq).toBe(0); // nothing stored
    // Its own topics stay its own to publish to, subscribed or not.
    await c.subscribe("room:sly0");
    expect((await c.publish("room:sly0", "again")).seq).toBe(2);
    expect((await c.publish("room:sly1", "again")).seq).toBe(2);
    expect(c.close).toBeNull();
  });

  test("parallel publishes to new topics cannot outrun the budget", async () => {
    const c = await connect("pat");
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => c.request({ type: "publish", topic: `room:burst${i}`, data: i })));
    expect(replies.filter((r) => r.type === "ack").length).toBe(5);
    expect(replies.filter((r) => r.type === "error").every((r) => r.code === "limit_exceeded")).toBe(true);
    expect(server.faults()).toEqual([]);
  });
});

describe("TOPIC_CREATIONS_PER_MIN: a refused publish leaves nothing behind", () => {
  // Past the budget the server asks whether the topic exists; that question must not create it
  // (an epoch kept HISTORY_TTL_S in Redis, or a topic log counted against HISTORY_MAX_BYTES).
  const env = { TOPIC_CREATIONS_PER_MIN: "2", RATE_LIMIT_PER_S: "1000", RATE_LIMIT_BURST: "1000" };

  /** A socket whose user has used up the budget. */
  async function spent(s: TestServer): Promise<TestClient> {
    const c = await TestClient.connect(s.wsUrl, { cookie: (await session(s, "alice")).cookie });
    clients.add(c);
    for (let i = 0; i < 2; i++) expect((await c.publish(`room:ok${i}`, i)).seq).toBe(1);
    return c;
  }

  async function refusedFlood(c: TestClient, from: number, count: number): Promise<void> {
    const replies = await Promise.all(Array.from({ length: count }, (_, i) => c.request({ type: "publish", topic: `room:refused${from + i}`, data: i })));
    expect(replies.every((r) => r.type === "error" && r.code === "limit_exceeded")).toBe(true);
  }

  test("with Redis: no key is written for a refused topic", async () => {
    const redis = await startRedis();
    const s = await startServer({ ...env, REDIS_URL: redis.url });
    try {
      const c = await spent(s);
      await refusedFlood(c, 0, 1); // after every process-wide key is written
      const before = await redis.command("DBSIZE");
      await refusedFlood(c, 1, 50);
      expect(await redis.command("DBSIZE")).toBe(before);
      expect(await redis.command("EXISTS", "sb:{room:refused7}:meta")).toBe(":0");
      expect(s.faults()).toEqual([]);
    } finally {
      s.kill();
      await redis.stop();
    }
  });

  test("embedded: refused topics do not push another topic's history out of HISTORY_MAX_BYTES", async () => {
    const s = await startServer({ ...env, HISTORY_MAX_BYTES: "65536" });
    try {
      const kept = await apiPublish(s, { topic: "room:kept", data: "keep me" });
      expect(kept.status).toBe(202);
      await refusedFlood(await spent(s), 0, 300);
      const reader = await TestClient.connect(s.wsUrl, { cookie: (await session(s, "bob")).cookie });
      clients.add(reader);
      const ack = await reader.subscribe("room:kept", { seq: 0, epoch: kept.body.epoch });
      expect(ack).toMatchObject({ recovered: true, seq: 1, epoch: kept.body.epoch });
    } finally {
      s.kill();
    }
  });
});
