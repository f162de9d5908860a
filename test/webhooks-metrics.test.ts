/**
 * GET /metrics shows the webhooks (SPEC §6): sent, failed, retried, and the outbox's length and
 * oldest age — read from a real server whose sender works through a Redis outbox that the test
 * fills, against a receiver that fails and then recovers.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type Redis from "ioredis";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { RedisOutbox } from "../src/webhooks/redis-outbox.ts";
import { newEvent } from "../src/webhooks/events.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { killAllServers, startServer, type TestServer } from "./support/server.ts";
import { scrape } from "./support/metrics.ts";
import { startReceiver, type WebhookReceiver } from "./support/webhook-receiver.ts";
import { waitFor } from "./suites/broker.suite.ts";

const SECRET = "webhook-secret-0123456789abcdef-0123456789";

async function waitUntil(condition: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}

let redis: TestRedis;
let conn: Redis;
let writer: RedisOutbox;
let receiver: WebhookReceiver;
let server: TestServer;

beforeAll(async () => {
  redis = await startRedis();
  conn = createConnection(redis.url, { name: "metrics-writer" });
  await connectWithin(conn, 2000);
  writer = new RedisOutbox({ redis: conn, instanceId: "writer" });
  receiver = startReceiver(SECRET);
  server = await startServer({
    REDIS_URL: redis.url,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_MAX_AGE_S: "20",
    WEBHOOK_RETRY_BASE_MS: "100",
  });
});
afterAll(async () => {
  server?.kill();
  killAllServers();
  await receiver?.stop();
  await closeConnection(conn);
  await redis?.stop();
});

describe("webhook metrics on GET /metrics", () => {
  test("a failing receiver: retried counts up, the outbox's length and oldest age show the backlog; after recovery sent counts every event and the outbox is empty", async () => {
    const before = await scrape(server);
    expect(before.value("switchboard_webhook_outbox_length")).toBe(0);
    expect(before.value("switchboard_webhook_outbox_oldest_age_seconds")).toBe(0);
    let down = true;
    receiver.answer = () => (down ? 500 : 204);
    const at = Date.now() - 5000;
    for (let n = 0; n < 3; n++) await writer.append(`t:room:m${n}`, newEvent("message.published", { topic: `room:m${n}`, n }, at + n));
    await waitFor(() => receiver.received.length >= 6, "two attempts per event", 5000);
    const failing = await scrape(server);
    expect(failing.value("switchboard_webhook_outbox_length")).toBe(3);
    expect(failing.value("switchboard_webhook_outbox_oldest_age_seconds")).toBeGreaterThanOrEqual(5);
    expect(failing.delta(before, "switchboard_webhooks_retried_total")).toBeGreaterThanOrEqual(3);
    expect(failing.delta(before, "switchboard_webhooks_sent_total")).toBe(0);
    down = false;
    await waitFor(() => receiver.delivered().length === 3, "three deliveries", 5000);
    await waitUntil(async () => (await scrape(server)).value("switchboard_webhook_outbox_length") === 0, "an empty outbox", 2000);
    const after = await scrape(server);
    expect(after.delta(before, "switchboard_webhooks_sent_total")).toBe(3);
    expect(after.value("switchboard_webhook_outbox_oldest_age_seconds")).toBe(0);
    expect(after.delta(before, "switchboard_webhooks_failed_total", { reason: "max_age" })).toBe(0);
  });

  test("an event past WEBHOOK_MAX_AGE_S is dropped: failed{reason=max_age} counts it and the log says so", async () => {
    const before = await scrape(server);
    receiver.answer = () => 200;
    const old = newEvent("user.online", { user: { id: "u1", name: "alice" } }, Date.now() - 60_000);
    await writer.append("u:u1", old);
    await waitUntil(async () => (await scrape(server)).delta(before, "switchboard_webhooks_failed_total", { reason: "max_age" }) === 1, "one event dropped", 3000);
    expect(receiver.received.some((r) => r.event.id === old.id)).toBe(false);
    expect(server.logs()).toContain(old.id);
    expect(server.faults()).toEqual([]);
  });
});
