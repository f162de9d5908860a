/**
 * Webhooks over Redis with several sender processes (SPEC §6): each event is sent by one machine of
 * the deployment, not one per machine; per-topic order; a receiver outage loses nothing; a
 * SIGKILLed sender's events are delivered by another. Real processes, real Redis, a real receiver.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import type Redis from "ioredis";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { RedisOutbox } from "../src/webhooks/redis-outbox.ts";
import { newEvent, orderingKey } from "../src/webhooks/events.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { startReceiver, type ReceivedWebhook, type WebhookReceiver } from "./support/webhook-receiver.ts";
import { waitFor } from "./suites/broker.suite.ts";

const SECRET = "webhook-secret-0123456789abcdef-0123456789";
const FIXTURE = new URL("./fixtures/webhook-sender.ts", import.meta.url).pathname;

let redis: TestRedis;
let writerConn: Redis;
let writer: RedisOutbox;
let receiver: WebhookReceiver;
const procs: Subprocess<"ignore", "pipe", "inherit">[] = [];

beforeAll(async () => {
  redis = await startRedis();
  writerConn = createConnection(redis.url, { name: "webhook-writer" });
  await connectWithin(writerConn, 2000);
  writer = new RedisOutbox({ redis: writerConn, instanceId: "writer" }); // appends only, like a server that saw the event
});
afterEach(async () => {
  for (const p of procs.splice(0)) p.kill("SIGKILL");
  await receiver?.stop();
  await redis.command("FLUSHALL");
});
afterAll(async () => {
  await closeConnection(writerConn);
  await redis.stop();
});

async function senders(names: string[], leaseMs: number, baseMs = 100): Promise<Subprocess<"ignore", "pipe", "inherit">[]> {
  const started = names.map((name) =>
    Bun.spawn(["bun", FIXTURE, redis.url, name, String(leaseMs), `${receiver.url}?sender=${name}`, SECRET, String(baseMs)], { stdin: "ignore", stdout: "pipe", stderr: "inherit" }),
  );
  procs.push(...started);
  await Promise.all(
    started.map(async (p) => {
      const line = await Promise.race([p.stdout.getReader().read(), Bun.sleep(8000).then(() => null)]);
      expect(new TextDecoder().decode(line?.value).trim()).toBe("ready");
    }),
  );
  return started;
}

async function appendTopics(topics: number, perTopic: number): Promise<void> {
  for (let n = 0; n < perTopic; n++) {
    for (let t = 0; t < topics; t++) await writer.append(orderingKey.topic(`room:t${t}`), newEvent("message.published", { topic: `room:t${t}`, n }));
  }
}

const byTopic = (list: ReceivedWebhook[], topic: string) => list.filter((r) => r.event.data.topic === topic);

describe("several senders on one Redis", () => {
  test("three senders: every event delivered once, by one sender per topic, each topic in order, the work shared", async () => {
    receiver = startReceiver(SECRET);
    await senders(["s1", "s2", "s3"], 1000);
    await Bun.sleep(1200); // the shards are shared out within a few lease/4 ticks
    await appendTopics(30, 10);
    await waitFor(() => receiver.delivered().length >= 300, "300 deliveries", 8000);
    await Bun.sleep(300);
    const delivered = receiver.delivered();
    expect(delivered.length).toBe(300);
    expect(new Set(delivered.map((r) => r.event.id)).size).toBe(300);
    for (let t = 0; t < 30; t++) {
      const got = byTopic(delivered, `room:t${t}`);
      expect(got.map((r) => r.event.data.n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(new Set(got.map((r) => r.sender)).size).toBe(1);
    }
    expect(new Set(delivered.map((r) => r.sender)).size).toBe(3);
    expect(delivered.every((r) => r.signatureValid === true)).toBe(true);
  });

  test("a receiver outage: every event is retried with its id until it recovers, nothing is lost, order is kept", async () => {
    receiver = startReceiver(SECRET);
    let down = true;
    receiver.answer = (e) => (down ? (e.data.n % 2 === 0 ? 503 : "stall") : 200);
    await senders(["s1", "s2"], 1000);
    await appendTopics(10, 5);
    await waitFor(() => new Set(receiver.received.map((r) => r.event.data.topic)).size === 10, "a failed attempt on every topic", 5000);
    await Bun.sleep(1500);
    down = false;
    receiver.release();
    await waitFor(() => new Set(receiver.delivered().map((r) => r.event.id)).size === 50, "50 events delivered", 8000);
    for (let t = 0; t < 10; t++) {
      const got = byTopic(receiver.delivered(), `room:t${t}`).map((r) => r.event.data.n);
      expect(got).toEqual([0, 1, 2, 3, 4]);
    }
    const attempts = receiver.received.filter((r) => r.event.data.topic === "room:t0" && r.event.data.n === 0);
    expect(attempts.length).toBeGreaterThan(1);
    expect(new Set(attempts.map((r) => r.raw)).size).toBe(1); // the same body, id included
  });

  test("a SIGKILLed sender: the other takes over its topics within the lease and delivers them in order", async () => {
    receiver = startReceiver(SECRET);
    let down = true;
    receiver.answer = () => (down ? 500 : 200);
    const leaseMs = 1500;
    const [s1] = await senders(["s1", "s2"], leaseMs, 200);
    await Bun.sleep(1000);
    await appendTopics(12, 5);
    await waitFor(() => new Set(receiver.received.map((r) => r.event.data.topic)).size === 12, "an attempt on every topic", 5000);
    const s1Topics = new Set(receiver.received.filter((r) => r.sender === "s1").map((r) => r.event.data.topic as string));
    expect(s1Topics.size).toBeGreaterThan(0);
    s1!.kill("SIGKILL");
    await s1!.exited;
    const killedAt = Date.now();
    down = false;
    await waitFor(() => receiver.delivered().length >= 60, "60 deliveries", leaseMs * 1.25 + 5000);
    expect(Date.now() - killedAt).toBeLessThan(leaseMs * 1.25 + 3000);
    const delivered = receiver.delivered();
    expect(delivered.length).toBe(60);
    expect(delivered.every((r) => r.sender === "s2")).toBe(true);
    for (let t = 0; t < 12; t++) expect(byTopic(delivered, `room:t${t}`).map((r) => r.event.data.n)).toEqual([0, 1, 2, 3, 4]);
  });
});
