/**
 * SPEC §8: MAX_SUBSCRIPTIONS_PER_SOCKET, MAX_SUBSCRIPTIONS_PER_USER (per process; the inbox counts
 * toward neither) and TOPIC_CREATIONS_PER_MIN (a publish that brings a topic into existence; past
 * it nothing is stored). Each refusal is `error {ref, code:"limit_exceeded"}`; the socket stays.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "../support/client.ts";
import { apiPublish, killAllServers, loginSession, startServer, type TestServer } from "../support/server.ts";

const NAMES = ["sam", "sue", "cat", "cy", "pat", "obs"];
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

  test("parallel publishes to new topics cannot outrun the budget", async () => {
    const c = await connect("pat");
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => c.request({ type: "publish", topic: `room:burst${i}`, data: i })));
    expect(replies.filter((r) => r.type === "ack").length).toBe(5);
    expect(replies.filter((r) => r.type === "error").every((r) => r.code === "limit_exceeded")).toBe(true);
    expect(server.faults()).toEqual([]);
  });
});
