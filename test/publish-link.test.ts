/**
 * The publish path's own connection to one Redis (src/redis/resp-link.ts, broker/redis-publish.ts):
 * how it fails and comes back, and what moving publishes off the command connection must not
 * change (SPEC §3 "Delivery": one socket's publishes in order, each publication delivered once).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import { RedisBroker } from "../src/broker/redis.ts";
import { SwitchboardError } from "../src/protocol/codes.ts";
import { TestClient, closeAll } from "./support/client.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { startProxy } from "./support/proxy.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { loginSession } from "./support/server.ts";
import { Recorder, uniqueTopic, waitFor } from "./suites/broker.suite.ts";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

let instances = 0;
function broker(url: string, commandTimeoutMs: number, log: string[] = []): RedisBroker {
  return new RedisBroker({
    url,
    instanceId: `link-${process.pid}-${++instances}`,
    historySize: 100,
    historyTtlS: 60,
    commandTimeoutMs,
    canaryIntervalMs: 200,
    log: (_level, message) => log.push(message),
  });
}

/** Polls an asynchronous condition. */
async function eventually(condition: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}

const outcome = (promise: Promise<unknown>) => promise.then(() => "ok", (e: unknown) => (e instanceof SwitchboardError ? e.code : String(e)));

/** The id of the connection named `<name>` in CLIENT LIST, if any. */
async function clientId(admin: Redis, name: string): Promise<string | undefined> {
  const list = (await admin.call("CLIENT", "LIST")) as string;
  return list.split("\n").find((line) => line.includes(` name=${name} `))?.match(/^id=(\d+)/)?.[1];
}

describe("the publish link when Redis fails", () => {
  test("Redis killed with publishes in flight: each answers `unavailable` at once (not at the deadline), then publishing recovers", async () => {
    const b = broker(redis.url, 5000);
    try {
      await b.start(new Recorder());
      const topic = uniqueTopic();
      await b.publish(topic, { from: "u", data: 0, ts: 1 });
      const inFlight = Array.from({ length: 200 }, (_, i) => outcome(b.publish(topic, { from: "u", data: i, ts: 1 })));
      const killed = performance.now();
      await redis.kill();
      const results = await Promise.all(inFlight);
      // The close event, not the 5 s deadline: the link saw its socket close.
      expect(performance.now() - killed).toBeLessThan(1000);
      expect(results.every((r) => r === "ok" || r === "unavailable")).toBe(true);
      expect(results).toContain("unavailable");
      expect(await outcome(b.publish(topic, { from: "u", data: "down", ts: 1 }))).toBe("unavailable");
      await waitFor(() => !b.healthy, "unhealthy while Redis is down", 1000);

      await redis.restart();
      await waitFor(() => b.healthy, "healthy again", 3000);
      expect((await b.publish(topic, { from: "u", data: "back", ts: 1 })).seq).toBe(1); // Redis came back empty
    } finally {
      await b.close();
    }
  });

  test("Redis stopped (SIGSTOP): a publish answers `unavailable` within the deadline, and the link is replaced", async () => {
    const admin = new Redis(redis.url, { lazyConnect: true, enableOfflineQueue: true });
    const log: string[] = [];
    const b = broker(redis.url, 500, log);
    const name = `switchboard:link-${process.pid}-${instances}:publish`;
    try {
      await admin.connect();
      await b.start(new Recorder());
      await b.publish(uniqueTopic(), { from: "u", data: 0, ts: 1 });
      const before = await clientId(admin, name);
      expect(before).toBeDefined();

      redis.signal("SIGSTOP");
      const started = performance.now();
      expect(await outcome(b.publish(uniqueTopic(), { from: "u", data: 1, ts: 1 }))).toBe("unavailable");
      const elapsed = performance.now() - started;
      expect(elapsed).toBeGreaterThan(450);
      expect(elapsed).toBeLessThan(1000);
      // A second missed deadline (its PING's) drops the connection for a new one.
      await waitFor(() => log.some((line) => line.includes("redis publish connection") && line.includes("does not answer")), "the link given up", 2000);
      redis.signal("SIGCONT");

      await waitFor(() => b.healthy, "healthy after SIGCONT", 5000);
      await eventually(async () => (await outcome(b.publish(uniqueTopic(), { from: "u", data: 2, ts: 1 }))) === "ok", "publishing again", 5000);
      const after = await clientId(admin, name);
      expect(after).toBeDefined();
      expect(after).not.toBe(before);
    } finally {
      redis.signal("SIGCONT");
      await b.close();
      admin.disconnect();
    }
  });

  test("a half-open link (replies vanish, no FIN): publishes fail within the deadline, then go through again on a new connection", async () => {
    const proxy = await startProxy({ upstreams: [redis.port] });
    const b = broker(`redis://127.0.0.1:${proxy.port}`, 500);
    try {
      await b.start(new Recorder());
      await b.publish(uniqueTopic(), { from: "u", data: 0, ts: 1 });
      proxy.blackhole("toClient"); // the connections open so far only: new ones work
      const started = performance.now();
      expect(await outcome(b.publish(uniqueTopic(), { from: "u", data: 1, ts: 1 }))).toBe("unavailable");
      expect(performance.now() - started).toBeLessThan(1000);
      await eventually(async () => (await outcome(b.publish(uniqueTopic(), { from: "u", data: 2, ts: 1 }))) === "ok", "a publish through a new connection", 5000);
    } finally {
      await b.close();
      await proxy.close();
    }
  });

  test("close() leaves nothing behind while Redis is unreachable (no timer keeps reconnecting)", async () => {
    const proxy = await startProxy({ upstreams: [redis.port] });
    const b = broker(`redis://127.0.0.1:${proxy.port}`, 500);
    await b.start(new Recorder());
    await proxy.close(); // the link now retries
    await Bun.sleep(300);
    await b.close();
    const admin = new Redis(redis.url);
    try {
      await Bun.sleep(1500);
      const list = (await admin.call("CLIENT", "LIST")) as string;
      expect(list).not.toContain(`link-${process.pid}-${instances}`);
    } finally {
      admin.disconnect();
    }
  });
});

describe("one socket's publish, then its subscribe with since (two connections to Redis now)", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster(["link-a"]);
  }, 30_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  test("pipelined without waiting for the ack: its own publication arrives exactly once", async () => {
    const server = cluster.nodes[0]!;
    const { cookie } = await loginSession(server, "alice", "alice-password");
    const clients = new Set<TestClient>();
    try {
      const publisher = await TestClient.connect(server.wsUrl, { cookie });
      clients.add(publisher);
      for (let round = 0; round < 20; round++) {
        const topic = `room:link-${round}-${Math.random().toString(36).slice(2, 8)}`;
        const first = await publisher.publish(topic, { n: 0 });
        const client = await TestClient.connect(server.wsUrl, { cookie });
        clients.add(client);
        client.send({ type: "publish", topic, data: { n: 1 }, ref: 1 });
        client.send({ type: "subscribe", topic, since: { seq: first.seq, epoch: first.epoch }, ref: 2 });
        await client.next((f) => f.type === "ack" && f.ref === 2);
        await client.next((f) => f.type === "ack" && f.ref === 1);
        await publisher.publish(topic, { n: 2 }); // a later one: whatever was coming has come before it
        await client.waitMessages(topic, 2);
        await Bun.sleep(20);
        const seqs = client.frames.filter((f) => f.type === "message" && f.topic === topic).map((f) => f.seq);
        expect(seqs).toEqual([first.seq + 1, first.seq + 2]);
        await client.closeAndWait();
        clients.delete(client);
      }
    } finally {
      await closeAll(clients);
    }
  }, 30_000);
});
