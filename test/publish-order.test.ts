/**
 * SPEC §3 "Delivery": one socket's publications to one topic get their seqs, and are delivered, in
 * the order it made them. Here while the scripts fall back (src/broker/redis-scripts.ts: FCALL →
 * EVALSHA → EVAL): the script cache or the library emptied under a stream of pipelined publishes
 * (SCRIPT FLUSH, FUNCTION FLUSH, a Redis restart), on a Redis with Functions and on one without
 * (FUNCTION and FCALL renamed away: what the broker sees of Redis 6.2, or of a managed Redis that
 * refuses them). A link that adds 40 ms each way keeps ~40 publishes in flight when it happens.
 * One Redis over `redis://` publishes on the RespLink; the last test runs the same scripts over
 * ioredis, the transport of a Cluster and of TLS.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { ioredisScripts, ScriptRunner, SCRIPTS } from "../src/broker/redis-scripts.ts";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { TestClient, closeAll, type Frame } from "./support/client.ts";
import { CLUSTER_ENV, inService } from "./support/cluster.ts";
import { startLatencyProxy, type LatencyProxy } from "./support/latency-proxy.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { loginSession, startServer, type TestServer } from "./support/server.ts";

const NO_FUNCTIONS = ["--rename-command", "FUNCTION", "", "--rename-command", "FCALL", ""];
/** Publishes per stream, one every 2 ms; the disturbance comes after DISTURB_AT of them. */
const COUNT = 300;
const DISTURB_AT = 100;

interface Deployment {
  redis: TestRedis;
  far: LatencyProxy;
  server: TestServer;
  cookie: string;
}

let running: Deployment | undefined;
const clients = new Set<TestClient>();
afterEach(async () => {
  await closeAll(clients);
  clients.clear();
  running?.server.kill();
  await running?.server.proc.exited;
  await running?.far.close();
  await running?.redis.stop();
  running = undefined;
});

async function deploy(redisArgs: string[]): Promise<Deployment> {
  const redis = await startRedis({ args: redisArgs });
  const far = await startLatencyProxy({ upstream: redis.port, delayMs: 40 });
  // Order is what is tested, not the deadline: with 80 ms per round trip, a loaded test machine's
  // stall of ~0.4 s would fail a few publishes `unavailable` under the default 500 ms.
  const server = await startServer({ ...CLUSTER_ENV, REDIS_COMMAND_TIMEOUT_MS: "3000", REDIS_URL: far.url("redis"), INSTANCE_ID: `order-${process.pid}` });
  running = { redis, far, server, cookie: "" };
  await inService(server);
  running.cookie = (await loginSession(server, "alice", "alice-password")).cookie;
  return running;
}

async function connect(d: Deployment): Promise<TestClient> {
  const client = await TestClient.connect(d.server.wsUrl, { cookie: d.cookie }, 10_000);
  clients.add(client);
  return client;
}

interface Stream {
  /** Every answer (ack or error) to publish `ref` (1 … COUNT). */
  answers: Map<number, Frame[]>;
  /** The subscriber's publications of the topic, in arrival order. */
  delivered: Frame[];
}

/**
 * One socket publishes COUNT times to one topic without waiting for acks; `disturb` runs midway.
 * Without `disturb`, the stream is the deployment's first publishes (nothing loaded yet); with it,
 * one publish went through before, so the disturbance is what empties the caches.
 */
async function stream(d: Deployment, disturb?: () => Promise<unknown>): Promise<Stream> {
  const topic = `room:order-${Math.random().toString(36).slice(2, 10)}`;
  const subscriber = await connect(d);
  subscriber.send({ type: "subscribe", topic, ref: 1 });
  await subscriber.next((f) => f.type === "ack" && f.ref === 1, 5000);
  const publisher = await connect(d);
  if (disturb !== undefined) await publisher.publish(topic, { n: 0 });
  let disturbed: Promise<unknown> = Promise.resolve();
  for (let n = 1; n <= COUNT; n++) {
    publisher.send({ type: "publish", topic, data: { n }, ref: n });
    if (n === DISTURB_AT && disturb !== undefined) disturbed = disturb();
    await Bun.sleep(2);
  }
  await disturbed;
  const answered = (f: Frame) => (f.type === "ack" || f.type === "error") && typeof f.ref === "number" && f.ref <= COUNT;
  await publisher.until(() => new Set(publisher.frames.filter(answered).map((f) => f.ref)).size === COUNT, 15_000, "every publish answered");
  // A later publication: whatever the subscriber was to get of the stream has come before it, or
  // before a resync that already counts it (a Redis restart: the new epoch's start is not replayed).
  const last = await publisher.publish(topic, { n: COUNT + 1 });
  const counted = (f: Frame) => (f.type === "message" && f.topic === topic && f.data.n === COUNT + 1) || (f.type === "resync" && f.topic === topic && f.epoch === last.epoch && f.seq >= last.seq);
  await subscriber.until(() => subscriber.frames.some(counted), 10_000, "the last publication");
  const answers = new Map<number, Frame[]>();
  for (const f of publisher.frames.filter(answered)) answers.set(f.ref!, [...(answers.get(f.ref!) ?? []), f]);
  return { answers, delivered: (subscriber.messages.get(topic) ?? []).filter((f) => f.data.n >= 1 && f.data.n <= COUNT) };
}

/** The acked publishes' positions, in publish order: each epoch one run, seqs rising within it. */
function expectAcksInOrder(s: Stream): { acked: number[] } {
  for (const [ref, frames] of s.answers) expect({ ref, answers: frames.length }).toEqual({ ref, answers: 1 });
  const answers = [...s.answers.values()].map((frames) => frames[0]!);
  expect(answers.filter((f) => f.type === "error" && f.code !== "unavailable")).toEqual([]);
  const acks = answers.filter((f) => f.type === "ack").sort((a, b) => a.ref! - b.ref!);
  const outOfOrder: string[] = [];
  const epochsSeen = new Set<string>();
  for (let i = 1; i < acks.length; i++) {
    const [before, after] = [acks[i - 1]!, acks[i]!];
    if (before.epoch === after.epoch ? after.seq <= before.seq : epochsSeen.has(after.epoch)) {
      outOfOrder.push(`#${before.ref} got ${before.seq}@${before.epoch.slice(0, 6)}, #${after.ref} got ${after.seq}@${after.epoch.slice(0, 6)}`);
    }
    epochsSeen.add(before.epoch);
  }
  expect(outOfOrder).toEqual([]);
  return { acked: acks.map((f) => f.ref!) };
}

/** What the subscriber got: in publish order, each once, and (`all`) every acked publication. */
function expectDeliveriesInOrder(s: Stream, acked: number[], all: boolean): void {
  const order = s.delivered.map((f) => f.data.n as number);
  const inversions = order.flatMap((n, i) => (i > 0 && n <= order[i - 1]! ? [`${order[i - 1]} before ${n}`] : []));
  expect(inversions).toEqual([]);
  if (all) expect(order).toEqual(acked);
}

/**
 * Another process's EVAL loading the script between two of ours (all of a deployment's processes
 * reconnect after a restart): a client that loads it the moment Redis first answers NOSCRIPT.
 */
async function loadOnFirstMiss(d: Deployment): Promise<void> {
  const other = createConnection(d.redis.url, { name: "order-other-process", commandTimeoutMs: 1000 });
  try {
    expect(await connectWithin(other, 2000)).toBe(true);
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && !/errorstat_NOSCRIPT/.test(await other.info("errorstats"))) await Bun.sleep(1);
    await other.script("LOAD", SCRIPTS.publish.text);
  } finally {
    await closeConnection(other);
  }
}

const flush = (d: Deployment, ...what: ("FUNCTION" | "SCRIPT")[]) => async () => {
  for (const kind of what) expect(await d.redis.command(kind, "FLUSH")).toBe("+OK");
};

/** `disturb`: none for the deployment's first publishes; `all`: nothing may fail (no restart). */
const CASES: { name: string; redisArgs: string[]; disturb?: (d: Deployment) => () => Promise<unknown>; all: boolean }[] = [
  { name: "Redis without Functions, the first publishes (its script cache empty)", redisArgs: NO_FUNCTIONS, all: true },
  { name: "Redis without Functions (EVALSHA), SCRIPT FLUSH midway", redisArgs: NO_FUNCTIONS, disturb: (d) => flush(d, "SCRIPT"), all: true },
  { name: "Redis without Functions, Redis restarted midway (its script cache empty)", redisArgs: NO_FUNCTIONS, disturb: (d) => () => d.redis.restart(), all: false },
  {
    name: "Redis without Functions, Redis restarted midway, and another process loads the script between our calls",
    redisArgs: NO_FUNCTIONS,
    disturb: (d) => async () => {
      await d.redis.restart();
      await loadOnFirstMiss(d);
    },
    all: false,
  },
  { name: "Redis with Functions, FUNCTION FLUSH and SCRIPT FLUSH midway", redisArgs: [], disturb: (d) => flush(d, "FUNCTION", "SCRIPT"), all: true },
  { name: "Redis with Functions, Redis restarted midway (library and script cache gone)", redisArgs: [], disturb: (d) => () => d.redis.restart(), all: false },
];

describe("a socket's pipelined publishes keep their order while the scripts fall back", () => {
  for (const c of CASES) {
    const outcome = c.all ? "acks and deliveries in publish order, none lost" : "what was acked and delivered is in publish order";
    test(`${c.name}: ${outcome}`, async () => {
      const d = await deploy(c.redisArgs);
      const s = await stream(d, c.disturb?.(d));
      const { acked } = expectAcksInOrder(s);
      // A restart fails the publishes in flight and those made while Redis is down (`unavailable`).
      expect(acked.length).toBeGreaterThan(c.all ? COUNT - 1 : COUNT / 3);
      expectDeliveriesInOrder(s, acked, c.all);
    }, 60_000);
  }
});

describe("the same over ioredis (the publish path of a Redis Cluster and of TLS)", () => {
  test("Redis without Functions, SCRIPT FLUSH under pipelined publishes: seqs in call order, each call answered once", async () => {
    const redis = await startRedis({ args: NO_FUNCTIONS });
    const far = await startLatencyProxy({ upstream: redis.port, delayMs: 40 });
    const client = createConnection(far.url("redis"), { name: "order-ioredis", commandTimeoutMs: 5000 });
    try {
      expect(await connectWithin(client, 5000)).toBe(true);
      const scripts = new ScriptRunner(ioredisScripts(client, false));
      await scripts.load(); // answered "unknown command": EVALSHA from here on
      const topic = `order-${Math.random().toString(36).slice(2, 10)}`;
      const publish = (n: number) =>
        scripts.publish([`sb:{${topic}}:meta`, `sb:{${topic}}:log`], ["", "0123456789abcdef", 100, 60, `{"seq":`, `,"n":${n}}`, `sb:{${topic}}:ch`, "PUBLISH"]);
      expect(await publish(0)).toMatch(/^1:/); // the script cached: the flush below is what empties it
      const replies: Promise<string>[] = [];
      for (let n = 1; n <= COUNT; n++) {
        replies.push(publish(n));
        if (n === DISTURB_AT) expect(await redis.command("SCRIPT", "FLUSH")).toBe("+OK");
        await Bun.sleep(1);
      }
      const seqs = (await Promise.all(replies)).map((reply) => Number(reply.split(":")[0]));
      expect(seqs).toEqual(Array.from({ length: COUNT }, (_, i) => i + 2));
    } finally {
      await closeConnection(client);
      await far.close();
      await redis.stop();
    }
  }, 30_000);
});
