/** The deployment registry suite on the embedded registry and on Redis (shared by every machine). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type Redis from "ioredis";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { MemoryDeploymentRegistry } from "../src/deployment/memory.ts";
import { RedisDeploymentRegistry, deploymentKeys } from "../src/deployment/redis.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { describeDeployment } from "./suites/deployment.suite.ts";

describeDeployment("memory", (leaseMs) => new MemoryDeploymentRegistry(leaseMs));

let redis: TestRedis;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = createConnection(redis.url, { name: "deployment-test" });
  await connectWithin(client, 2000);
});
afterAll(async () => {
  await closeConnection(client);
  await redis.stop();
});

describeDeployment("Redis", (leaseMs) => new RedisDeploymentRegistry(client, leaseMs));

describe("RedisDeploymentRegistry", () => {
  test("an unchanged report rewrites the topics hash when Redis lost it (restart, eviction)", async () => {
    const registry = new RedisDeploymentRegistry(client, 5000);
    const status = { id: "lost-hash", region: "local", connections: 1, topics: 1, startedAt: 1, draining: false };
    const topics = new Map([["room:lost-hash", 3]]);
    await registry.report(status, topics);
    await client.del(deploymentKeys.topics("lost-hash"));
    expect(await registry.topics("room:lost-hash", 10)).toEqual([]);
    await registry.report(status, topics);
    expect(await registry.topics("room:lost-hash", 10)).toEqual([{ topic: "room:lost-hash", subscribers: 3 }]);
  });

  test("a changed report writes only the topics listed as changed, and the whole hash again when Redis lost it", async () => {
    const registry = new RedisDeploymentRegistry(client, 5000);
    const status = { id: "changed-hash", region: "local", connections: 3, topics: 3, startedAt: 1, draining: false };
    const key = deploymentKeys.topics("changed-hash");
    const live = new Map([["room:ch-a", 1], ["room:ch-b", 1], ["room:ch-c", 1]]);
    await registry.report(status, live, null);
    // A field the next report does not list stays as Redis has it: only the changes are written.
    await client.hset(key, "room:ch-a", "9");
    live.set("room:ch-b", 2);
    live.delete("room:ch-c");
    live.set("room:ch-d", 1);
    await registry.report(status, live, new Set(["room:ch-b", "room:ch-c", "room:ch-d"]));
    expect(await client.hgetall(key)).toEqual({ "room:ch-a": "9", "room:ch-b": "2", "room:ch-d": "1" });
    await client.del(key);
    live.set("room:ch-b", 3);
    await registry.report(status, live, new Set(["room:ch-b"]));
    expect(await client.hgetall(key)).toEqual({ "room:ch-a": "1", "room:ch-b": "3", "room:ch-d": "1" });
    expect(await client.pttl(key)).toBeGreaterThan(0);
    // Changes not known (null): the whole hash.
    await client.hset(key, "room:ch-a", "9");
    await registry.report(status, live, null);
    expect(await client.hgetall(key)).toEqual({ "room:ch-a": "1", "room:ch-b": "3", "room:ch-d": "1" });
  });

  test("after a report that failed, the next one writes the whole hash", async () => {
    const registry = new RedisDeploymentRegistry(client, 5000);
    const status = { id: "failed-hash", region: "local", connections: 1, topics: 2, startedAt: 1, draining: false };
    const key = deploymentKeys.topics("failed-hash");
    const live = new Map([["room:fh-a", 1], ["room:fh-b", 1]]);
    await registry.report(status, live, null);
    // The hash holds a wrong type: the MULTI's HSET fails, the report rejects.
    await client.del(key);
    await client.set(key, "not a hash");
    live.set("room:fh-b", 2);
    await expect(registry.report(status, live, new Set(["room:fh-b"]))).rejects.toThrow();
    await client.del(key);
    await client.hset(key, "room:fh-a", "9"); // what the next report must not trust
    await registry.report(status, live, new Set());
    expect(await client.hgetall(key)).toEqual({ "room:fh-a": "1", "room:fh-b": "2" });
  });
});
