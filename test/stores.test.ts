/** The stores suite on the embedded stores and on Redis (shared by every machine). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type Redis from "ioredis";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { memoryStores } from "../src/stores/memory.ts";
import { redisStores } from "../src/stores/redis.ts";
import { RevocationReader } from "../src/stores/revocation-reads.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { describeStores } from "./suites/stores.suite.ts";

describeStores("memory", () => memoryStores());

let redis: TestRedis;
let client: Redis;
let reads: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = createConnection(redis.url, { name: "stores-test" });
  reads = createConnection(redis.url, { name: "stores-test-reads" }); // as the server opens it on one Redis
  await Promise.all([connectWithin(client, 2000), connectWithin(reads, 2000)]);
});
afterAll(async () => {
  await Promise.all([closeConnection(client), closeConnection(reads)]);
  await redis.stop();
});

describeStores("Redis", () => redisStores(client));
// As the server runs them: the revocation reads of one moment as one script call.
describeStores("Redis, revocation reads batched", () => redisStores(client, new RevocationReader(reads, 500)));

describe("revocations written by earlier versions", () => {
  test("a session revoked under sb:revoked:<sid> (a string with TTL) stays revoked, with and without batched reads", async () => {
    const sid = `legacy-${Date.now().toString(36)}`;
    await client.set(`sb:revoked:${sid}`, "1", "EX", 60);
    expect(await redisStores(client).revocations.isRevoked(sid)).toBe(true);
    const batched = redisStores(client, new RevocationReader(reads, 500));
    expect(await Promise.all([batched.revocations.isRevoked(sid), batched.revocations.isRevoked(`${sid}-other`)])).toEqual([true, false]);
  });
});
