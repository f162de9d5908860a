/**
 * SPEC §7: the webhook outbox works unchanged on a Redis Cluster — the Outbox conformance suite on
 * six local redis-servers (3 primaries, 3 replicas), and two senders sharing the 16 shards, whose
 * streams and leases (`sb:{wh:<n>}:…`) spread over the primaries.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeConnection, connectWithin, createClusterConnection, type RedisClient } from "../src/redis/connection.ts";
import { RedisOutbox, SHARDS, outboxKeys } from "../src/webhooks/redis-outbox.ts";
import { startRedisCluster, type TestRedisCluster } from "./support/redis-cluster.ts";
import { waitFor } from "./suites/broker.suite.ts";
import { describeOutbox, numbered, takeAll } from "./suites/outbox.suite.ts";

let cluster: TestRedisCluster;
const clients: RedisClient[] = [];
async function connection(): Promise<RedisClient> {
  const client = createClusterConnection(cluster.url, { name: "outbox-cluster-test" });
  clients.push(client);
  await connectWithin(client, 5000);
  return client;
}
/** Every outbox of a deployment shares the same keys: each test starts from an empty cluster. */
async function flush(): Promise<void> {
  await Promise.all(cluster.nodes.map((node) => cluster.cli(node.port, "FLUSHALL").catch(() => "")));
}
beforeAll(async () => {
  cluster = await startRedisCluster();
});
afterAll(async () => {
  await Promise.all(clients.map(closeConnection));
  await cluster.stop();
});

let instances = 0;
const outbox = async () => new RedisOutbox({ redis: await connection(), instanceId: `cl-outbox-${++instances}`, leaseMs: 1000, pollMs: 50 });

describeOutbox("RedisOutbox on Redis Cluster", async () => {
  await flush();
  return outbox();
});

describe("RedisOutbox on Redis Cluster: two senders", () => {
  test("the shards live on several primaries; two senders share them and each entry is taken by one", async () => {
    await flush();
    const primaries = new Set(await Promise.all(Array.from({ length: SHARDS }, (_, n) => cluster.primaryOf(outboxKeys.events(n)))));
    expect(primaries.size).toBe(3);
    const a = await outbox();
    const b = await outbox();
    await a.start();
    await b.start();
    try {
      await waitFor(() => a.held.length === SHARDS / 2 && b.held.length === SHARDS / 2, "an even share of the shards", 4000);
      for (let i = 0; i < 60; i++) await a.append(`t:room:k${i % 20}`, numbered(i, `room:k${i % 20}`));
      const [fromA, fromB] = await Promise.all([takeAll(a, 60, 1500), takeAll(b, 60, 1500)]);
      expect(fromA.length + fromB.length).toBe(60);
      expect(new Set([...fromA, ...fromB].map((e) => e.event.id)).size).toBe(60);
      for (const e of [...fromA, ...fromB]) await (fromA.includes(e) ? a : b).done(e);
      expect(await a.stats()).toEqual({ length: 0, oldestAt: null });
    } finally {
      await a.close();
      await b.close();
    }
  });
});
