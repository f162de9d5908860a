/**
 * RedisBroker: the shared conformance suite against a real redis-server, then what only a
 * deployment of several processes over Redis can show (SPEC §3 "Delivery").
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { RedisBroker } from "../src/broker/redis.ts";
import { SwitchboardError } from "../src/protocol/codes.ts";
import { startProxy } from "./support/proxy.ts";
import { startLatencyProxy } from "./support/latency-proxy.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { describeBroker, Recorder, uniqueTopic, waitFor } from "./suites/broker.suite.ts";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

let instances = 0;
const makeBroker = (options: { historySize: number; historyTtlS: number }) =>
  new RedisBroker({ url: redis.url, instanceId: `test-${process.pid}-${++instances}`, ...options });

describeBroker("RedisBroker", makeBroker);

describe("RedisBroker across processes", () => {
  const open: RedisBroker[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((b) => b.close()));
  });
  async function node(options = { historySize: 100, historyTtlS: 60 }) {
    const broker = makeBroker(options);
    open.push(broker);
    const events = new Recorder();
    await broker.start(events);
    return { broker, events };
  }

  test("publishers on two processes: both receive every publication once, in the same order", async () => {
    const [a, b] = [await node(), await node()];
    const topic = uniqueTopic();
    await a.broker.subscribe(topic);
    await b.broker.subscribe(topic);
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).broker.publish(topic, { from: `p${i % 2}`, data: i, ts: 1 })),
    );
    await waitFor(() => a.events.on(topic).length === 100 && b.events.on(topic).length === 100, "100 publications on both");
    const expected = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(a.events.on(topic).map((p) => p.seq)).toEqual(expected);
    expect(b.events.on(topic).map((p) => p.frame)).toEqual(a.events.on(topic).map((p) => p.frame));
  });

  test("ephemeral frames and control messages reach the other process", async () => {
    const [a, b] = [await node(), await node()];
    const topic = uniqueTopic();
    await b.broker.subscribe(topic);
    await a.broker.broadcast(topic, '{"type":"presence.leave"}');
    await a.broker.sendControl({ type: "revoke-session", sid: "s-9" });
    await waitFor(() => b.events.ephemeral.length === 1 && b.events.control.length === 1, "frame and control on b");
    expect(b.events.ephemeral).toEqual([{ topic, frame: '{"type":"presence.leave"}' }]);
    expect(b.events.control).toEqual([{ type: "revoke-session", sid: "s-9" }]);
  });

  test("a dropped subscriber link is resubscribed, then onReconnect fires and delivery goes on", async () => {
    const { broker, events } = await node();
    const topic = uniqueTopic();
    await broker.subscribe(topic);
    await redis.command("CLIENT", "KILL", "TYPE", "pubsub");
    await waitFor(() => events.reconnects === 1, "onReconnect", 3000);
    await broker.publish(topic, { from: "u", data: 1, ts: 1 });
    await waitFor(() => events.on(topic).length === 1, "delivery after the reconnect");
  });
});

describe("RedisBroker when Redis fails", () => {
  test("a link that stays up but goes deaf is caught by the canary: reconnect, onReconnect, nothing lost", async () => {
    const proxy = await startProxy({ upstreams: [redis.port] });
    const behindProxy = new RedisBroker({
      url: `redis://127.0.0.1:${proxy.port}`,
      instanceId: `deaf-${process.pid}`,
      historySize: 100,
      historyTtlS: 60,
      canaryIntervalMs: 200,
      canaryTimeoutMs: 800,
    });
    const direct = makeBroker({ historySize: 100, historyTtlS: 60 });
    const events = new Recorder();
    try {
      await behindProxy.start(events);
      await direct.start(new Recorder());
      const topic = uniqueTopic();
      await behindProxy.subscribe(topic);
      await direct.publish(topic, { from: "u", data: 1, ts: 1 });
      await waitFor(() => events.on(topic).length === 1, "the first publication");

      // Replies and pushes from Redis vanish; no FIN, no RST: all three connections (commands,
      // publishes, subscriber) claim to be up.
      expect(proxy.blackhole("toClient")).toBe(3);
      const lost = await direct.publish(topic, { from: "u", data: 2, ts: 1 });
      await waitFor(() => events.reconnects === 1, "onReconnect after the deaf link was replaced", 6000);
      expect(events.on(topic).length).toBe(1); // seq 2 never arrived live: the hub's repair reads it
      const repair = await behindProxy.history(topic, { seq: 1, epoch: lost.epoch });
      expect(repair.publications.map((p) => p.seq)).toEqual([2]);
      await direct.publish(topic, { from: "u", data: 3, ts: 1 });
      await waitFor(() => events.on(topic).some((p) => p.seq === 3), "live delivery on the new link");
    } finally {
      await behindProxy.close();
      await direct.close();
      await proxy.close();
    }
  });

  test("Redis down: publish fails with unavailable within 1 s and healthy is false; back (empty): healthy, onReconnect, new epoch", async () => {
    const broker = makeBroker({ historySize: 100, historyTtlS: 60 });
    const events = new Recorder();
    try {
      await broker.start(events);
      const topic = uniqueTopic();
      await broker.subscribe(topic);
      const before = await broker.publish(topic, { from: "u", data: 1, ts: 1 });
      await broker.publish(topic, { from: "u", data: 2, ts: 1 });

      await redis.kill();
      const started = performance.now();
      const failure = await broker.publish(topic, { from: "u", data: 3, ts: 1 }).catch((e: unknown) => e);
      expect(performance.now() - started).toBeLessThan(1000);
      expect(failure).toBeInstanceOf(SwitchboardError);
      expect((failure as SwitchboardError).code).toBe("unavailable");
      await waitFor(() => !broker.healthy, "healthy false", 1000);
      const historyFailure = await broker.history(topic).catch((e: unknown) => e);
      expect((historyFailure as SwitchboardError).code).toBe("unavailable");

      await redis.restart();
      await waitFor(() => broker.healthy, "healthy again", 3000);
      await waitFor(() => events.reconnects === 1, "onReconnect", 3000);
      const repaired = await broker.history(topic, { seq: 2, epoch: before.epoch });
      expect(repaired.recovered).toBe(false);
      expect(repaired.position.seq).toBe(0);
      expect(repaired.position.epoch).not.toBe(before.epoch);
      const after = await broker.publish(topic, { from: "u", data: 4, ts: 1 });
      expect(after).toEqual({ seq: 1, epoch: repaired.position.epoch, duplicate: false });
      await waitFor(() => events.on(topic).some((p) => p.epoch === after.epoch), "live delivery in the new epoch");
    } finally {
      await broker.close();
    }
  });

  test("starting while Redis is down does not throw; the broker becomes healthy when Redis appears", async () => {
    await redis.kill();
    const broker = new RedisBroker({ url: redis.url, instanceId: `late-${process.pid}`, historySize: 10, historyTtlS: 60, startTimeoutMs: 500 });
    try {
      const started = performance.now();
      await broker.start(new Recorder());
      expect(performance.now() - started).toBeLessThan(1500);
      expect(broker.healthy).toBe(false);
      await redis.restart();
      await waitFor(() => broker.healthy, "healthy after Redis appeared", 3000);
    } finally {
      await broker.close();
    }
  });
});

describe("RedisBroker.subscribe keeps its promise", () => {
  test("a SUBSCRIBE that Redis never confirms rejects with unavailable instead of resolving", async () => {
    const proxy = await startProxy({ upstreams: [redis.port] });
    const broker = new RedisBroker({ url: `redis://127.0.0.1:${proxy.port}`, instanceId: `unconfirmed-${process.pid}`, historySize: 10, historyTtlS: 60 });
    try {
      await broker.start(new Recorder());
      proxy.blackhole("toClient"); // the SUBSCRIBE arrives; its confirmation never comes back
      const started = performance.now();
      const failure = await broker.subscribe(uniqueTopic()).then(() => "resolved", (e: unknown) => e);
      expect(failure).toBeInstanceOf(SwitchboardError);
      expect((failure as SwitchboardError).code).toBe("unavailable");
      expect(performance.now() - started).toBeLessThan(3000);
    } finally {
      await broker.close();
      await proxy.close();
    }
  });
});

describe("REDIS_COMMAND_TIMEOUT_MS", () => {
  test("a publish Redis does not answer fails after commandTimeoutMs (here 1500), not the old fixed 500", async () => {
    const proxy = await startProxy({ upstreams: [redis.port] });
    const broker = new RedisBroker({ url: `redis://127.0.0.1:${proxy.port}`, instanceId: `timeout-${process.pid}`, historySize: 10, historyTtlS: 60, commandTimeoutMs: 1500 });
    try {
      await broker.start(new Recorder());
      proxy.blackhole("toClient");
      const started = performance.now();
      const failure = await broker.publish(uniqueTopic(), { from: "u", data: 1, ts: 1 }).catch((e: unknown) => e);
      const elapsed = performance.now() - started;
      expect((failure as SwitchboardError).code).toBe("unavailable");
      expect(elapsed).toBeGreaterThan(1400);
      console.log(`command timeout 1500: publish failed after ${Math.round(elapsed)} ms`);
      expect(elapsed).toBeLessThan(2500);
    } finally {
      await broker.close();
      await proxy.close();
    }
  });
});

describe("RedisBroker across versions", () => {
  test("a topic written by a version without the writer field keeps its epoch and seq (a rolling deploy resyncs nothing)", async () => {
    const broker = makeBroker({ historySize: 100, historyTtlS: 60 });
    try {
      await broker.start(new Recorder());
      const topic = uniqueTopic();
      // What the previous publish script left: meta {seq, epoch}, no `w`.
      expect(await redis.command("HSET", `sb:{${topic}}:meta`, "seq", "7", "epoch", "0123456789abcdef")).toBe(":2");
      expect(await broker.publish(topic, { from: "u", data: 1, ts: 1 })).toEqual({ seq: 8, epoch: "0123456789abcdef", duplicate: false });
    } finally {
      await broker.close();
    }
  });
});

describe("RedisBroker publish replies", () => {
  test("as a Function and as a script (EVALSHA) alike: seq, epoch, duplicate; an idempotency key written by an older version reads back", async () => {
    const broker = makeBroker({ historySize: 100, historyTtlS: 60 });
    try {
      await broker.start(new Recorder());
      for (let i = 0; i < 100 && (await redis.command("FUNCTION", "LIST")) === "*0"; i++) await Bun.sleep(20);
      expect(await redis.command("FUNCTION", "LIST")).toBe("*1");
      const topic = uniqueTopic();
      const first = await broker.publish(topic, { from: "u", data: 1, ts: 1, key: "k1" });
      expect(first).toEqual({ seq: 1, epoch: expect.stringMatching(/^[0-9a-f]{16}$/), duplicate: false });
      expect(await broker.publish(topic, { from: "u", data: 1, ts: 1, key: "k1" })).toEqual({ ...first, duplicate: true });
      // Without the library (a primary restarted empty) the broker falls back to EVALSHA.
      expect(await redis.command("FUNCTION", "FLUSH")).toBe("+OK");
      expect(await broker.publish(topic, { from: "u", data: 2, ts: 1 })).toEqual({ seq: 2, epoch: first.epoch, duplicate: false });
      expect(await broker.publish(topic, { from: "u", data: 1, ts: 1, key: "k1" })).toEqual({ ...first, duplicate: true });
      // The key's value format ("<seq>:<epoch>") is shared with older versions during a rolling deploy.
      expect(await redis.command("SET", `sb:{${topic}}:key:k2`, `7:${first.epoch}`)).toBe("+OK");
      expect(await broker.publish(topic, { from: "u", data: 3, ts: 1, key: "k2" })).toEqual({ seq: 7, epoch: first.epoch, duplicate: true });
    } finally {
      await broker.close();
    }
  });
});

describe("RedisBroker publish order across the fallback to EVALSHA", () => {
  test("publishes made while FCALLs that met a missing library are out get their seqs after those, in call order", async () => {
    // 150 ms each way: A's error comes back at ~300 ms, B's at ~400; C is made in between.
    const far = await startLatencyProxy({ upstream: redis.port, delayMs: 150 });
    const broker = new RedisBroker({ url: far.url("redis"), instanceId: `fallback-${process.pid}`, historySize: 100, historyTtlS: 60, commandTimeoutMs: 2000 });
    try {
      await broker.start(new Recorder());
      // The library was loaded before this publish (same connection, in order): FCALL from here on.
      await broker.publish(uniqueTopic(), { from: "u", data: 0, ts: 1 });
      expect(await redis.command("FUNCTION", "FLUSH")).toBe("+OK");
      const topic = uniqueTopic();
      const started = performance.now();
      const at = (ms: number) => Bun.sleep(Math.max(0, started + ms - performance.now()));
      const a = broker.publish(topic, { from: "u", data: "a", ts: 1 });
      await at(100);
      const b = broker.publish(topic, { from: "u", data: "b", ts: 1 });
      await at(350);
      const c = broker.publish(topic, { from: "u", data: "c", ts: 1 });
      const seqs = (await Promise.all([a, b, c])).map((result) => result.seq);
      expect(seqs).toEqual([1, 2, 3]);
      expect((await broker.history(topic, { seq: 0, epoch: (await a).epoch })).publications.map((p) => JSON.parse(p.frame).data)).toEqual(["a", "b", "c"]);
    } finally {
      await broker.close();
      await far.close();
    }
  });
});

describe("RedisBroker on one Redis with a replica (a managed Redis failing over)", () => {
  test("a failover that lost acknowledged writes moves the topic to a new epoch: no seq is reused", async () => {
    const [primary, replica] = [await startRedis(), await startRedis()];
    const proxy = await startProxy({ upstreams: [primary.port] });
    const broker = new RedisBroker({ url: `redis://127.0.0.1:${proxy.port}`, instanceId: `failover-${process.pid}`, historySize: 100, historyTtlS: 60 });
    const events = new Recorder();
    try {
      expect(await primary.command("CONFIG", "SET", "repl-diskless-sync-delay", "0")).toBe("+OK");
      expect(await replica.command("REPLICAOF", "127.0.0.1", String(primary.port))).toBe("+OK");
      await broker.start(events);
      const topic = uniqueTopic();
      await broker.subscribe(topic);
      let before = { seq: 0, epoch: "" };
      for (let i = 1; i <= 3; i++) before = await broker.publish(topic, { from: "u", data: i, ts: 1 });
      // Seqs 1-3 reached the replica (its first sync may take a moment).
      await waitUntil(async () => (await primary.command("WAIT", "1", "200")) === ":1", "the replica in sync", 5000);
      // The replica is promoted; seqs 4 and 5, acknowledged by the old primary, never reach it.
      expect(await replica.command("REPLICAOF", "NO", "ONE")).toBe("+OK");
      for (let i = 4; i <= 5; i++) before = await broker.publish(topic, { from: "u", data: i, ts: 1 });
      expect(before.seq).toBe(5);
      await waitFor(() => events.on(topic).length === 5, "5 publications delivered");
      // The service's address now leads to the promoted replica.
      proxy.setUpstreams([replica.port]);
      proxy.dropAll();
      await waitFor(() => events.reconnects >= 1 && broker.healthy, "reconnected to the new primary", 5000);
      const history = await broker.history(topic, before);
      expect(history.recovered).toBe(false);
      expect(history.position.epoch).not.toBe(before.epoch);
      const after = await broker.publish(topic, { from: "u", data: 6, ts: 1 });
      expect(after).toEqual({ seq: 1, epoch: history.position.epoch, duplicate: false });
    } finally {
      await broker.close();
      await proxy.close();
      await primary.stop();
      await replica.stop();
    }
  });

  test("a primary that lost writes, resynced from the new primary and was promoted again starts a new epoch (its cached id is gone)", async () => {
    const [x, y] = [await startRedis(), await startRedis()];
    const proxy = await startProxy({ upstreams: [x.port] });
    const broker = new RedisBroker({ url: `redis://127.0.0.1:${proxy.port}`, instanceId: `flip-${process.pid}`, historySize: 100, historyTtlS: 60 });
    try {
      for (const r of [x, y]) expect(await r.command("CONFIG", "SET", "repl-diskless-sync-delay", "0")).toBe("+OK");
      expect(await y.command("REPLICAOF", "127.0.0.1", String(x.port))).toBe("+OK");
      await broker.start(new Recorder());
      const topic = uniqueTopic();
      for (let i = 1; i <= 3; i++) await broker.publish(topic, { from: "u", data: i, ts: 1 });
      await waitUntil(async () => (await x.command("WAIT", "1", "200")) === ":1", "y in sync", 5000);
      expect(await y.command("REPLICAOF", "NO", "ONE")).toBe("+OK"); // y takes over
      let lost = { seq: 0, epoch: "" };
      for (let i = 4; i <= 5; i++) lost = await broker.publish(topic, { from: "u", data: i, ts: 1 }); // only x has these
      // x rejoins as y's replica (a full resync: its history diverged), then is promoted again.
      expect(await x.command("REPLICAOF", "127.0.0.1", String(y.port))).toBe("+OK");
      await waitUntil(async () => (await y.command("WAIT", "1", "200")) === ":1", "x in sync with y", 5000);
      expect(await x.command("REPLICAOF", "NO", "ONE")).toBe("+OK");
      proxy.dropAll();
      let after: { seq: number; epoch: string } | undefined;
      await waitUntil(async () => (after = await broker.publish(topic, { from: "u", data: 6, ts: 1 }).catch(() => undefined)) !== undefined, "a publish after the reconnect", 5000);
      expect(after!.epoch).not.toBe(lost.epoch);
      expect(after!.seq).toBe(1);
    } finally {
      await broker.close();
      await proxy.close();
      await x.stop();
      await y.stop();
    }
  });});

async function waitUntil(condition: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}
