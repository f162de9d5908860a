/** The stores suite on the embedded stores and on Redis (shared by every machine). */
import { afterAll, beforeAll } from "bun:test";
import type Redis from "ioredis";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { memoryStores } from "../src/stores/memory.ts";
import { redisStores } from "../src/stores/redis.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { describeStores } from "./suites/stores.suite.ts";

describeStores("memory", () => memoryStores());

let redis: TestRedis;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = createConnection(redis.url, { name: "stores-test" });
  await connectWithin(client, 2000);
});
afterAll(async () => {
  await closeConnection(client);
  await redis.stop();
});

describeStores("Redis", () => redisStores(client));
