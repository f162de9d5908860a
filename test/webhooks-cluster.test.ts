/**
 * Webhook events across a deployment on Redis (SPEC §6): three server processes, one real Redis,
 * one real receiver. Online/offline and presence events once for the whole deployment however the
 * user's sockets are spread; a crashed machine's users leave and go offline, announced by a
 * survivor; a crashed sender's events are delivered by another machine, in order.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { killAllServers, session, type TestServer } from "./support/server.ts";
import type Redis from "ioredis";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { outboxKeys, shardOf } from "../src/webhooks/redis-outbox.ts";
import { orderingKey } from "../src/webhooks/events.ts";
import { startReceiver, type ReceivedWebhook, type WebhookReceiver } from "./support/webhook-receiver.ts";
import { waitFor } from "./suites/broker.suite.ts";

const SECRET = "webhook-secret-0123456789abcdef-0123456789";
const LEASE_MS = 1500;

let receiver: WebhookReceiver;

let cluster: TestCluster;
let data: Redis;
const clients = new Set<TestClient>();

beforeAll(async () => {
  receiver = startReceiver(SECRET);
  const env = {
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_RETRY_BASE_MS: "100",
    WEBHOOK_LEASE_MS: String(LEASE_MS),
    PRESENCE_LEASE_MS: String(LEASE_MS),
  };
  // Each machine posts to its own query string, so the receiver knows which one sent what.
  cluster = await startCluster([], env);
  data = createConnection(cluster.redis.url, { name: "webhooks-test" });
  await connectWithin(data, 2000);
  cluster.nodes.push(...(await Promise.all(["a", "b", "c"].map((name) => cluster.add(name, { WEBHOOK_URL: `${receiver.url}?sender=${name}` })))));
});
afterAll(async () => {
  await closeAll(clients);
  if (data !== undefined) await closeConnection(data);
  await cluster?.stop();
  killAllServers();
  await receiver?.stop();
});

async function connect(server: TestServer, user: string): Promise<TestClient> {
  const { cookie } = await session(cluster.nodes[0]!, user); // one session works on every machine
  const client = await TestClient.connect(server.wsUrl, { cookie }, 5000);
  clients.add(client);
  return client;
}

const about = (name: string, topic?: string) => (r: ReceivedWebhook) => r.event.data.user?.name === name && (topic === undefined || r.event.data.topic === topic);
/**
 * The kinds of the events delivered, each event once (by id): delivery is at-least-once (SPEC §6),
 * and a survivor sends again what a crashed machine sent but had not yet marked done. Two events of
 * one change (two ids) still count twice.
 */
const kinds = (filter: (r: ReceivedWebhook) => boolean) => [...new Map(receiver.delivered().filter(filter).map((r) => [r.event.id, r.event.type])).values()];

describe("deployment-wide, once", () => {
  test("a user with sockets on two machines: one user.online, one presence.join, then one presence.leave and one user.offline", async () => {
    const [A, B] = cluster.nodes as [TestServer, TestServer];
    const topic = `room:c${Date.now().toString(36)}`;
    const onA = await connect(A, "alice");
    await onA.subscribe(topic);
    const onB = await connect(B, "alice");
    await onB.subscribe(topic);
    await waitFor(() => kinds(about("alice")).length === 2, "online and join");
    await onA.closeAndWait();
    await Bun.sleep(500);
    expect(kinds(about("alice")).sort()).toEqual(["presence.join", "user.online"]);
    await onB.closeAndWait();
    await waitFor(() => kinds(about("alice")).length === 4, "leave and offline", 3000);
    expect(kinds(about("alice", topic))).toEqual(["presence.join", "presence.leave"]);
    expect(kinds(about("alice")).filter((t) => t.startsWith("user."))).toEqual(["user.online", "user.offline"]);
    const ids = receiver.received.filter(about("alice")).map((r) => r.event.id);
    expect(new Set(ids).size).toBe(ids.length); // each sent once (no machine sent a copy)
    expect(receiver.received.every((r) => r.signatureValid === true)).toBe(true);
  });
});

describe("a machine that crashes", () => {
  test("its users leave their topics and go offline within the presence lease, announced once by a survivor", async () => {
    const C = cluster.nodes[2]!;
    const topic = `room:k${Date.now().toString(36)}`;
    const carol = await connect(C, "carol");
    await carol.subscribe(topic);
    await waitFor(() => kinds(about("carol")).length === 2, "carol online and joined");
    C.kill();
    await C.proc.exited;
    const killedAt = Date.now();
    await waitFor(() => kinds(about("carol")).length === 4, "carol's leave and offline", LEASE_MS * 2 + 3000);
    expect(Date.now() - killedAt).toBeLessThan(30_000);
    expect(kinds(about("carol", topic))).toEqual(["presence.join", "presence.leave"]);
    expect(kinds(about("carol")).filter((t) => t.startsWith("user."))).toEqual(["user.online", "user.offline"]);
    expect(receiver.delivered().filter(about("carol")).slice(2).every((r) => r.sender !== "c")).toBe(true);
  });

  test("the machine sending a topic's events crashes while the receiver fails: the other delivers them all, in order", async () => {
    const [A, B] = cluster.nodes as [TestServer, TestServer];
    // A topic whose outbox shard is held by a or b (c crashed in the test before), read from Redis.
    let topic = "";
    let holder = "";
    for (let i = 0; holder === "" && i < 200; i++) {
      topic = `room:o${i}x${Date.now().toString(36)}`;
      const lease = await data.get(outboxKeys.lease(shardOf(orderingKey.topic(topic))));
      holder = lease?.startsWith("a.") ? "a" : lease?.startsWith("b.") ? "b" : "";
    }
    const [victim, other, otherName] = holder === "a" ? [A, B, "b"] : [B, A, "a"];
    let down = true;
    receiver.answer = (e) => (down && e.data.topic === topic ? 500 : 200);
    const sockets = await Promise.all(["alice", "bob", "carol"].map((user) => connect(other, user)));
    for (const s of sockets) await s.subscribe(topic);
    for (const s of sockets) await s.request({ type: "unsubscribe", topic });
    await waitFor(() => receiver.received.some((r) => r.event.data.topic === topic), "a failed attempt");
    expect(receiver.received.find((r) => r.event.data.topic === topic)!.sender).toBe(holder);
    victim.kill();
    await victim.proc.exited;
    down = false;
    const about = () => receiver.delivered().filter((r) => r.event.data.topic === topic);
    await waitFor(() => new Set(about().map((r) => r.event.id)).size === 6, "six deliveries", LEASE_MS * 2 + 5000);
    const firsts: string[] = [];
    for (const r of about()) if (!firsts.includes(r.event.id)) firsts.push(r.event.id);
    const order = firsts.map((id) => about().find((r) => r.event.id === id)!).map((r) => `${r.event.type} ${r.event.data.user.name}`);
    expect(order).toEqual(["presence.join alice", "presence.join bob", "presence.join carol", "presence.leave alice", "presence.leave bob", "presence.leave carol"]);
    expect(about().every((r) => r.sender === otherName)).toBe(true);
  });
});
