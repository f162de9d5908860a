/**
 * RedisPresence: the shared suite, then what needs several machines: one join and one leave per
 * user across processes, and the members of a crashed process leaving within the lease.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type Redis from "ioredis";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { RedisPresence } from "../src/presence/redis.ts";
import type { User } from "../src/protocol/frames.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { uniqueTopic, waitFor } from "./suites/broker.suite.ts";
import { describePresence, sorted } from "./suites/presence.suite.ts";

let redis: TestRedis;
const clients: Redis[] = [];
async function connection(): Promise<Redis> {
  const client = createConnection(redis.url, { name: "presence-test" });
  clients.push(client);
  await connectWithin(client, 2000);
  return client;
}
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await Promise.all(clients.map(closeConnection));
  await redis.stop();
});

let instances = 0;
const instance = () => `presence-${process.pid}-${++instances}`;

describePresence("RedisPresence", async () => new RedisPresence({ redis: await connection(), instanceId: instance() }));

const alice: User = { id: "u-alice", name: "alice" };
const bob: User = { id: "u-bob", name: "bob" };
const carol: User = { id: "u-carol", name: "carol" };

describe("RedisPresence across processes", () => {
  test("a user with connections on two machines joins once and leaves once; both list the same members", async () => {
    const a = new RedisPresence({ redis: await connection(), instanceId: instance() });
    const b = new RedisPresence({ redis: await connection(), instanceId: instance() });
    await a.start({ onExpired() {} });
    await b.start({ onExpired() {} });
    try {
      const topic = uniqueTopic();
      expect(await a.join(topic, "a1", alice)).toBe(true);
      expect(await b.join(topic, "b1", alice)).toBe(false);
      expect(await b.join(topic, "b2", bob)).toBe(true);
      expect(sorted(await a.members(topic))).toEqual([
        { user: alice, connections: 2 },
        { user: bob, connections: 1 },
      ]);
      expect(sorted(await b.members(topic))).toEqual(sorted(await a.members(topic)));
      expect(await a.leave(topic, "a1", alice)).toBe(false);
      expect(await b.leave(topic, "b1", alice)).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("close removes this process's entries", async () => {
    const a = new RedisPresence({ redis: await connection(), instanceId: instance() });
    const b = new RedisPresence({ redis: await connection(), instanceId: instance() });
    await a.start({ onExpired() {} });
    await b.start({ onExpired() {} });
    const topic = uniqueTopic();
    await a.join(topic, "a1", alice);
    await b.join(topic, "b1", bob);
    await a.close();
    expect(await b.members(topic)).toEqual([{ user: bob, connections: 1 }]);
    await b.close();
  });

  test("a crashed process's members leave within the lease, each reported once by one survivor (one of them restarted under the crashed one's id)", async () => {
    const leaseMs = 1500;
    const topic = uniqueTopic();
    const crashed = instance();
    const expired: { topic: string; user: User; by: string }[] = [];
    const survivors = await Promise.all(
      ["s1", "s2"].map(async (name) => {
        // s1 is the crashed process restarted with the same INSTANCE_ID: it must not adopt the old entries.
        const instanceId = name === "s1" ? crashed : `${crashed}-${name}`;
        const p = new RedisPresence({ redis: await connection(), instanceId, leaseMs, sweepMs: 200 });
        await p.start({ onExpired: (t, user) => expired.push({ topic: t, user, by: name }) });
        return p;
      }),
    );
    const holder = Bun.spawn(
      ["bun", new URL("./fixtures/presence-holder.ts", import.meta.url).pathname, redis.url, crashed, String(leaseMs), topic,
        "x1:u-alice:alice", "x2:u-alice:alice", "x3:u-bob:bob"],
      { stdout: "pipe", stderr: "inherit" },
    );
    try {
      const reader = holder.stdout.getReader();
      const first = await Promise.race([reader.read(), Bun.sleep(5000).then(() => null)]);
      expect(new TextDecoder().decode(first?.value)).toContain("ready");
      // bob is also connected through a survivor, so only alice leaves.
      expect(await survivors[0]!.join(topic, "s1", bob)).toBe(false);
      await survivors[1]!.join(topic, "s2", carol);
      expect(sorted(await survivors[0]!.members(topic))).toEqual([
        { user: alice, connections: 2 },
        { user: bob, connections: 2 },
        { user: carol, connections: 1 },
      ]);

      holder.kill("SIGKILL");
      await holder.exited;
      const killedAt = Date.now();
      await waitFor(() => expired.length >= 1, "onExpired for alice", 5000);
      const elapsed = Date.now() - killedAt;
      expect(elapsed).toBeLessThan(leaseMs + 1500);
      await Bun.sleep(600); // a second report would come within a few sweeps
      expect(expired.map(({ topic: t, user }) => ({ topic: t, user }))).toEqual([{ topic, user: alice }]);
      expect(sorted(await survivors[1]!.members(topic))).toEqual([
        { user: bob, connections: 1 },
        { user: carol, connections: 1 },
      ]);
    } finally {
      holder.kill("SIGKILL");
      await Promise.all(survivors.map((s) => s.close()));
    }
  });

  test("entries come back after Redis restarted empty", async () => {
    const a = new RedisPresence({ redis: await connection(), instanceId: instance(), leaseMs: 900 });
    await a.start({ onExpired() {} });
    try {
      const topic = uniqueTopic();
      await a.join(topic, "a1", alice);
      await redis.restart();
      await waitFor(() => clients.every((c) => c.status === "ready"), "reconnected", 3000);
      await Bun.sleep(700);
      expect(await a.members(topic)).toEqual([{ user: alice, connections: 1 }]);
    } finally {
      await a.close();
    }
  });
});
