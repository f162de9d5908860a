/**
 * RedisOutbox: the shared Outbox suite, then what needs several processes: shards shared between
 * senders with each entry handed to one of them, and a closed or crashed sender's unfinished
 * entries taken over, oldest first.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type Redis from "ioredis";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { RedisOutbox, SHARDS, outboxKeys, shardOf } from "../src/webhooks/redis-outbox.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { waitFor } from "./suites/broker.suite.ts";
import { describeOutbox, numbered, takeAll } from "./suites/outbox.suite.ts";

let redis: TestRedis;
const clients: Redis[] = [];
async function connection(): Promise<Redis> {
  const client = createConnection(redis.url, { name: "outbox-test" });
  clients.push(client);
  await connectWithin(client, 2000);
  return client;
}
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await Promise.all(clients.map(closeConnection));
  await redis.stop();
});

let instances = 0;
const outbox = async (leaseMs = 1000) => new RedisOutbox({ redis: await connection(), instanceId: `outbox-${++instances}`, leaseMs, pollMs: 50 });

describeOutbox("RedisOutbox", async () => {
  // Every outbox of a deployment shares the same keys: each test starts from an empty Redis.
  await redis.command("FLUSHALL");
  return outbox();
});

const n = (e: { event: { data: unknown } }) => (e.event.data as { n: number }).n;

describe("RedisOutbox across processes", () => {
  test("two senders share the shards; each entry is handed to exactly one, a key always to the same one", async () => {
    await redis.command("FLUSHALL");
    const a = await outbox();
    const b = await outbox();
    await a.start();
    await b.start();
    try {
      await waitFor(() => a.held.length === SHARDS / 2 && b.held.length === SHARDS / 2, "an even share of the shards", 4000);
      expect([...a.held, ...b.held].sort((x, y) => x - y)).toEqual(Array.from({ length: SHARDS }, (_, i) => i));
      for (let i = 0; i < 120; i++) await a.append(`t:room:k${i % 30}`, numbered(i, `room:k${i % 30}`));
      const [fromA, fromB] = await Promise.all([takeAll(a, 120, 1500), takeAll(b, 120, 1500)]);
      expect(fromA.length + fromB.length).toBe(120);
      expect(fromA.length).toBeGreaterThan(0);
      expect(fromB.length).toBeGreaterThan(0);
      const keysA = new Set(fromA.map((e) => e.key));
      expect(fromB.some((e) => keysA.has(e.key))).toBe(false);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("a closed sender's unfinished entries go to another at once, oldest first, then new ones", async () => {
    await redis.command("FLUSHALL");
    const a = await outbox(2000);
    await a.start();
    for (let i = 0; i < 10; i++) await a.append("t:room:c", numbered(i, "room:c"));
    const firstTake = await takeAll(a, 10);
    expect(firstTake.map(n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await a.done(firstTake[0]!);
    const b = await outbox(2000);
    await b.start();
    try {
      await a.close();
      await b.append("t:room:c", numbered(10, "room:c"));
      const started = Date.now();
      const taken = await takeAll(b, 10, 3000);
      expect(taken.map(n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      await b.close();
    }
  });

  test("a SIGKILLed sender's shards and unfinished entries are taken over within the lease", async () => {
    await redis.command("FLUSHALL");
    const leaseMs = 1200;
    const writer = await outbox(leaseMs); // appends only, never started
    for (let i = 0; i < 40; i++) await writer.append(`t:room:x${i % 8}`, numbered(i, `room:x${i % 8}`));
    const holder = Bun.spawn(["bun", new URL("./fixtures/outbox-holder.ts", import.meta.url).pathname, redis.url, "holder", String(leaseMs), "40"], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const survivor = await outbox(leaseMs);
    try {
      const reader = holder.stdout.getReader();
      const line = await Promise.race([reader.read(), Bun.sleep(8000).then(() => null)]);
      expect(new TextDecoder().decode(line?.value).trim()).toBe(`ready ${SHARDS} 40`);
      await survivor.start();
      expect(await survivor.take(100, 300)).toEqual([]); // the holder holds every shard
      holder.kill("SIGKILL");
      await holder.exited;
      const killedAt = Date.now();
      const taken = await takeAll(survivor, 40, 5000);
      expect(Date.now() - killedAt).toBeLessThan(leaseMs * 1.25 + 1000);
      expect(taken.length).toBe(40);
      for (let k = 0; k < 8; k++) {
        expect(taken.filter((e) => e.key === `t:room:x${k}`).map(n)).toEqual([0, 1, 2, 3, 4].map((j) => j * 8 + k));
      }
    } finally {
      holder.kill("SIGKILL");
      await survivor.close();
    }
  });

  test("entries stranded with a consumer that read them after losing its shard are claimed by the holder after a lease", async () => {
    await redis.command("FLUSHALL");
    const leaseMs = 800;
    const a = await outbox(leaseMs);
    await a.start();
    const raw = await connection();
    try {
      expect(await a.take(10, 100)).toEqual([]); // its takeover pass is over
      const event = numbered(1, "room:ghost");
      await a.append("t:room:ghost", event);
      // A stalled process that had held the shard reads the entry with its old consumer name.
      const read = await raw.xreadgroup("GROUP", "senders", "ghost", "COUNT", 10, "STREAMS", outboxKeys.events(shardOf("t:room:ghost")), ">");
      expect(read).not.toBeNull();
      expect(await a.take(10, 300)).toEqual([]);
      const taken = await takeAll(a, 1, 4000);
      expect(taken.map((e) => e.event)).toEqual([event]);
    } finally {
      await a.close();
    }
  });

  test("after Redis restarted empty, the outbox takes its shards again and goes on", async () => {
    const a = await outbox(900);
    await a.start();
    try {
      await redis.restart();
      await waitFor(() => clients.every((c) => c.status === "ready"), "reconnected", 3000);
      await a.append("t:room:r", numbered(1, "room:r"));
      const taken = await takeAll(a, 1, 3000);
      expect(taken.map(n)).toEqual([1]);
      await a.done(taken[0]!);
      expect(await a.stats()).toEqual({ length: 0, oldestAt: null });
    } finally {
      await a.close();
    }
  });
});
