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

  test("a changed report writes only what changed, and the whole hash again when Redis lost it", async () => {
    const registry = new RedisDeploymentRegistry(client, 5000);
    const status = { id: "changed-hash", region: "local", connections: 3, topics: 3, startedAt: 1, draining: false };
    await registry.report(status, new Map([["room:ch-a", 1], ["room:ch-b", 1], ["room:ch-c", 1]]));
    await registry.report(status, new Map([["room:ch-a", 1], ["room:ch-b", 2], ["room:ch-d", 1]]));
    expect(await client.hgetall(deploymentKeys.topics("changed-hash"))).toEqual({ "room:ch-a": "1", "room:ch-b": "2", "room:ch-d": "1" });
    await client.del(deploymentKeys.topics("changed-hash"));
    await registry.report(status, new Map([["room:ch-a", 1], ["room:ch-b", 3], ["room:ch-d", 1]]));
    expect(await client.hgetall(deploymentKeys.topics("changed-hash"))).toEqual({ "room:ch-a": "1", "room:ch-b": "3", "room:ch-d": "1" });
    expect(await client.pttl(deploymentKeys.topics("changed-hash"))).toBeGreaterThan(0);
  });
});
