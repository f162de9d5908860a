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

describe("RedisDeploymentRegistry: one script call per report (lua/report.lua)", () => {
  const status = (id: string, extra: Record<string, unknown> = {}) => ({ id, region: "local", connections: 1, topics: 1, startedAt: 1, draining: false, ...extra });

  test("writes what a version before the script wrote (its MULTI), so each version reads the other's reports", async () => {
    const registry = new RedisDeploymentRegistry(client, 5000);
    const topics = new Map([["room:same-a", 2], ["room:same-b", 1]]);
    await registry.report(status("same-new", { fenceMs: 250 }), topics);
    // The MULTI of the version before (commit 62ba088), as it wrote a report whole.
    const old = status("same-old");
    await client.multi().set(deploymentKeys.status(old.id), JSON.stringify(old), "PX", 5000).sadd(deploymentKeys.ids, old.id).del(deploymentKeys.topics(old.id)).hset(deploymentKeys.topics(old.id), Object.fromEntries(topics)).pexpire(deploymentKeys.topics(old.id), 5000).exec();
    for (const id of ["same-new", "same-old"]) {
      expect(await client.type(deploymentKeys.status(id))).toBe("string");
      expect(await client.hgetall(deploymentKeys.topics(id))).toEqual({ "room:same-a": "2", "room:same-b": "1" });
      expect(await client.pttl(deploymentKeys.status(id))).toBeGreaterThan(4000);
      expect(await client.pttl(deploymentKeys.topics(id))).toBeGreaterThan(4000);
      expect(await client.sismember(deploymentKeys.ids, id)).toBe(1);
    }
    expect(JSON.parse((await client.get(deploymentKeys.status("same-new")))!)).toEqual(status("same-new", { fenceMs: 250 }));
    const listed = (await registry.instances()).filter((i) => i.id.startsWith("same-"));
    expect(listed).toEqual([status("same-new", { fenceMs: 250 }), old]);
    expect(await registry.topics("room:same-", 10)).toEqual([
      { topic: "room:same-a", subscribers: 4 },
      { topic: "room:same-b", subscribers: 2 },
    ]);
  });

  test("with a listener, each report hands it every live process by id (expired ones dropped), null when it failed", async () => {
    const registry = new RedisDeploymentRegistry(client, 5000);
    const heard: (string[] | null)[] = [];
    registry.watchLive((live) => heard.push(live === null ? null : live.map((i) => i.id).filter((id) => id.startsWith("watch-"))));
    await client.sadd(deploymentKeys.ids, "watch-expired");
    await new RedisDeploymentRegistry(client, 5000).report(status("watch-b"), new Map());
    await registry.report(status("watch-a", { fenceMs: 250 }), new Map());
    expect(heard).toEqual([["watch-a", "watch-b"]]);
    expect(await client.sismember(deploymentKeys.ids, "watch-expired")).toBe(0);
    await registry.report(status("watch-a"), new Map([["room:w", 1]]), null);
    await client.set(deploymentKeys.topics("watch-a"), "not a hash");
    await expect(registry.report(status("watch-a"), new Map([["room:w", 2]]), new Set(["room:w"]))).rejects.toThrow();
    expect(heard.length).toBe(3);
    expect(heard.at(-1)).toBeNull();
    await client.del(deploymentKeys.topics("watch-a"));
  });

  test("10,000 topics in one report, whole and then changed", async () => {
    const registry = new RedisDeploymentRegistry(client, 5000);
    const topics = new Map(Array.from({ length: 10_000 }, (_, i) => [`room:many-${i}`, 1 + (i % 3)] as [string, number]));
    await registry.report(status("many"), topics, null);
    expect(await client.hlen(deploymentKeys.topics("many"))).toBe(10_000);
    const changed = new Set<string>();
    for (let i = 0; i < 6000; i++) {
      topics.delete(`room:many-${i}`);
      changed.add(`room:many-${i}`);
    }
    topics.set("room:many-0", 5);
    await registry.report(status("many"), topics, changed);
    expect(await client.hlen(deploymentKeys.topics("many"))).toBe(4001);
    expect(await client.hget(deploymentKeys.topics("many"), "room:many-0")).toBe("5");
    expect(await client.hget(deploymentKeys.topics("many"), "room:many-9999")).toBe("1");
  });

  test("after SCRIPT FLUSH the next report loads the script again and lands", async () => {
    const registry = new RedisDeploymentRegistry(client, 5000);
    await registry.report(status("flushed"), new Map());
    await client.script("FLUSH");
    await registry.report(status("flushed", { connections: 2 }), new Map([["room:flushed", 1]]));
    expect(JSON.parse((await client.get(deploymentKeys.status("flushed")))!).connections).toBe(2);
    expect(await client.hgetall(deploymentKeys.topics("flushed"))).toEqual({ "room:flushed": "1" });
  });
});
