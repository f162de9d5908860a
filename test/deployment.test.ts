/** The deployment registry suite on the embedded registry and on Redis (shared by every machine). */
import { afterAll, beforeAll } from "bun:test";
import type Redis from "ioredis";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { MemoryDeploymentRegistry } from "../src/deployment/memory.ts";
import { RedisDeploymentRegistry } from "../src/deployment/redis.ts";
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
