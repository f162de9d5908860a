/**
 * SPEC §7: the Broker, Stores, Presence and DeploymentRegistry conformance suites, unchanged, on a real Redis Cluster
 * (six local redis-servers: 3 primaries, 3 replicas), plus what only a cluster shows: topics spread
 * over the shards, each shard's traffic on its own sharded link.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RedisBroker } from "../src/broker/redis.ts";
import { RedisPresence } from "../src/presence/redis.ts";
import { closeConnection, connectWithin, createClusterConnection, type RedisClient } from "../src/redis/connection.ts";
import { redisStores } from "../src/stores/redis.ts";
import { RevocationReader } from "../src/stores/revocation-reads.ts";
import { startRedisCluster, type TestRedisCluster } from "./support/redis-cluster.ts";
import { hearChannel } from "./support/redis.ts";
import { describeBroker, Recorder, uniqueTopic, waitFor } from "./suites/broker.suite.ts";
import { describePresence } from "./suites/presence.suite.ts";
import { describeStores } from "./suites/stores.suite.ts";
import { describeDeployment } from "./suites/deployment.suite.ts";
import { RedisDeploymentRegistry } from "../src/deployment/redis.ts";

let cluster: TestRedisCluster;
const clients: RedisClient[] = [];
async function dataConnection(): Promise<RedisClient> {
  const client = createClusterConnection(cluster.url, { name: "cluster-test" });
  clients.push(client);
  await connectWithin(client, 5000);
  return client;
}
beforeAll(async () => {
  cluster = await startRedisCluster();
});
afterAll(async () => {
  await Promise.all(clients.map(closeConnection));
  await cluster.stop();
});

let instances = 0;
const makeBroker = (options: { historySize: number; historyTtlS: number }) =>
  new RedisBroker({ url: cluster.url, cluster: true, instanceId: `cl-${process.pid}-${++instances}`, ...options });

describeBroker("RedisBroker on Redis Cluster", makeBroker);
const hear = (channel: string) => hearChannel(cluster.url, channel);
describeStores("Redis Cluster", async () => redisStores(await dataConnection()), { hear });
describeStores("Redis Cluster, revocation reads batched", async () => redisStores(await dataConnection(), new RevocationReader(await dataConnection(), 500)), { hear });
describeStores("Redis Cluster, legacy user key off (after a transition)", async () => redisStores(await dataConnection(), new RevocationReader(await dataConnection(), 500), "off"), { hear });
describePresence("RedisPresence on Redis Cluster", async () => new RedisPresence({ redis: await dataConnection(), instanceId: `p-${++instances}` }));
describeDeployment("Redis Cluster", async (leaseMs) => new RedisDeploymentRegistry(await dataConnection(), leaseMs));

describe("RedisBroker on Redis Cluster: sharded pub/sub", () => {
  test("topics on every primary: each publication arrives once, in order, over SPUBLISH", async () => {
    const [a, b] = [makeBroker({ historySize: 100, historyTtlS: 60 }), makeBroker({ historySize: 100, historyTtlS: 60 })];
    const events = new Recorder();
    try {
      await a.start(events);
      await b.start(new Recorder());
      // 12 random topics missed one of the 3 primaries about 2 % of the time (3 × (2/3)^12): add
      // topics until every primary owns one.
      const topics = Array.from({ length: 12 }, () => uniqueTopic());
      const primaries = new Set(await Promise.all(topics.map((t) => cluster.primaryOf(`sb:{${t}}:ch`))));
      while (primaries.size < 3 && topics.length < 100) {
        const topic = uniqueTopic();
        topics.push(topic);
        primaries.add(await cluster.primaryOf(`sb:{${topic}}:ch`));
      }
      expect(primaries.size).toBe(3);
      for (const t of topics) await a.subscribe(t);
      await Promise.all(topics.flatMap((t) => Array.from({ length: 10 }, (_, i) => b.publish(t, { from: "u", data: i, ts: 1 }))));
      await waitFor(() => events.publications.length === topics.length * 10, `${topics.length * 10} publications`);
      for (const t of topics) expect(events.on(t).map((p) => p.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      // Sharded pub/sub: the topic's primary counts one shard subscriber (this process).
      const shardChannels = await cluster.cli(await cluster.primaryOf(`sb:{${topics[0]}}:ch`), "PUBSUB", "SHARDNUMSUB", `sb:{${topics[0]}}:ch`);
      expect(shardChannels.split("\n")).toEqual([`sb:{${topics[0]}}:ch`, "1"]);
      // Control traffic stays on plain pub/sub, which the cluster forwards to every node.
      await b.sendControl({ type: "revoke-session", sid: "s-cluster" });
      await waitFor(() => events.control.length === 1, "the control message on the other process");
      expect(events.control).toEqual([{ type: "revoke-session", sid: "s-cluster" }]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("one shard's subscriber link dropped: only that shard's topics are resubscribed and repaired", async () => {
    const repaired: (string[] | undefined)[] = [];
    const events = new (class extends Recorder {
      override onReconnect(topics?: string[]) {
        super.onReconnect();
        repaired.push(topics);
      }
    })();
    const broker = makeBroker({ historySize: 100, historyTtlS: 60 });
    try {
      await broker.start(events);
      const spread = new Map<number, string>();
      while (spread.size < 2) {
        const topic = uniqueTopic();
        spread.set(await cluster.primaryOf(`sb:{${topic}}:ch`), topic);
      }
      const [port, other] = [[...spread.keys()][0]!, [...spread.values()][1]!];
      const dropped = spread.get(port)!;
      await broker.subscribe(dropped);
      await broker.subscribe(other);
      expect(await cluster.cli(port, "CLIENT", "KILL", "TYPE", "pubsub")).not.toBe("0");
      // Links without topics (the control channel's, if it shares that node) report an empty list.
      const withTopics = () => repaired.filter((topics) => topics === undefined || topics.length > 0);
      await waitFor(() => withTopics().length >= 1, "the dropped link's repair", 5000);
      await Bun.sleep(200);
      expect(withTopics()).toEqual([[dropped]]);
      await broker.publish(dropped, { from: "u", data: 1, ts: 1 });
      await broker.publish(other, { from: "u", data: 1, ts: 1 });
      await waitFor(() => events.on(dropped).length === 1 && events.on(other).length === 1, "live delivery on both shards");
    } finally {
      await broker.close();
    }
  });
});
