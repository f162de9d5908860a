/**
 * SPEC §8: with Redis, revocations live where an evicting Redis cannot drop them — a logged-out
 * session never comes back. The Redis here evicts volatile keys (`maxmemory-policy
 * volatile-random`) and is pushed far past `maxmemory` by expiring keys (what topics, tickets and
 * idempotency keys are); the logged-out cookie must stay refused.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import { startRedis, type TestRedis } from "../support/redis.ts";
import { killAllServers, loginSession, startServer, type TestServer } from "../support/server.ts";

let redis: TestRedis;
let server: TestServer;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  await client.config("SET", "maxmemory", String(8 * 1024 * 1024));
  await client.config("SET", "maxmemory-policy", "volatile-random");
  server = await startServer({ REDIS_URL: redis.url });
});
afterAll(async () => {
  client?.disconnect();
  server?.kill();
  killAllServers();
  await redis?.stop();
});

async function me(cookie: string): Promise<number> {
  const res = await fetch(`${server.url}/auth/me`, { headers: { Cookie: cookie } });
  await res.arrayBuffer();
  return res.status;
}

describe("revocations survive an evicting Redis", () => {
  test("a session logged out before Redis evicted most of its volatile keys stays refused", async () => {
    const cookies = await Promise.all(["alice", "bob", "carol"].map(async (u) => (await loginSession(server, u)).cookie));
    for (const cookie of cookies) {
      expect(await me(cookie)).toBe(200);
      const out = await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Cookie: cookie, Origin: server.origin } });
      expect(out.status).toBe(204);
      expect(await me(cookie)).toBe(401);
    }
    // ~40 MB of expiring keys through an 8 MB Redis: most volatile keys are evicted.
    const value = "v".repeat(400);
    for (let batch = 0; batch < 100; batch++) {
      const pipeline = client.pipeline();
      for (let i = 0; i < 1000; i++) pipeline.set(`filler:${batch}:${i}`, value, "EX", 3600);
      await pipeline.exec();
    }
    const stats = await client.info("stats");
    expect(Number(/evicted_keys:(\d+)/.exec(stats)![1])).toBeGreaterThan(50_000);
    for (const cookie of cookies) expect(await me(cookie)).toBe(401);
  }, 15_000);
});
