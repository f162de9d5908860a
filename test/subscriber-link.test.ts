/**
 * The broker's subscriber connection to one Redis over redis:// (a RespLink since round nine:
 * src/broker/redis-subscriber.ts): how it fails and comes back. Pub/sub is at-most-once, so what
 * matters is that the link comes back subscribed to every topic and says so (`onReconnect` with
 * those topics: the hub re-reads their history), and that a subscribe is never promised in vain.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import { RedisBroker } from "../src/broker/redis.ts";
import { SwitchboardError } from "../src/protocol/codes.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { Recorder, uniqueTopic, waitFor } from "./suites/broker.suite.ts";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

/** Remembers the topics of every onReconnect. */
class Restores extends Recorder {
  restored: string[][] = [];
  override onReconnect(topics?: string[]) {
    super.onReconnect();
    this.restored.push(topics ?? []);
  }
}

let instances = 0;
function broker(commandTimeoutMs = 500): { b: RedisBroker; name: string } {
  const id = `sublink-${process.pid}-${++instances}`;
  const b = new RedisBroker({ url: redis.url, instanceId: id, historySize: 100, historyTtlS: 60, commandTimeoutMs, canaryIntervalMs: 200 });
  return { b, name: `switchboard:${id}:subscriber` };
}

/** The CLIENT LIST line of the connection named `name`, if any. */
async function client(name: string): Promise<string | undefined> {
  const admin = new Redis(redis.url);
  try {
    return ((await admin.call("CLIENT", "LIST")) as string).split("\n").find((line) => line.includes(` name=${name} `));
  } finally {
    admin.disconnect();
  }
}

const seqs = (events: Recorder, topic: string) => events.on(topic).map((p) => p.seq);

/**
 * A subscribing broker on `topics` and a publishing one, both started; the first topic's first
 * publication already delivered (the link works before the fault).
 */
async function subscribed(events: Restores, topics: string[]): Promise<{ sub: ReturnType<typeof broker>; pub: ReturnType<typeof broker> }> {
  const [sub, pub] = [broker(), broker()];
  try {
    await sub.b.start(events);
    await pub.b.start(new Recorder());
    for (const topic of topics) await sub.b.subscribe(topic);
    await pub.b.publish(topics[0]!, { from: "u", data: 1, ts: 1 });
    await waitFor(() => events.on(topics[0]!).length === 1, "the first publication");
    return { sub, pub };
  } catch (error) {
    await Promise.all([sub.b.close(), pub.b.close()]);
    throw error;
  }
}

describe("the subscriber link of one Redis", () => {
  test("is a RESP2 link of its own carrying the control channel, the canary and the topics", async () => {
    const { b, name } = broker();
    try {
      await b.start(new Recorder());
      await b.subscribe(uniqueTopic());
      const line = await client(name);
      expect(line).toMatch(/ resp=2( |$)/);
      expect(line).toMatch(/ sub=3 /);
    } finally {
      await b.close();
    }
  });

  test("Redis killed while subscribed: the link comes back with every topic resubscribed and reported; nothing after it is lost", async () => {
    const events = new Restores();
    const [a, c] = [uniqueTopic(), uniqueTopic()];
    const { sub, pub } = await subscribed(events, [a, c]);
    try {
      await redis.kill();
      await waitFor(() => !sub.b.healthy, "unhealthy while Redis is down", 2000);
      await redis.restart();
      await waitFor(() => events.restored.length === 1, "onReconnect", 5000);
      expect(events.restored[0]!.sort()).toEqual([a, c].sort());
      await waitFor(() => sub.b.healthy && pub.b.healthy, "healthy again", 5000);

      // Redis came back empty: a new epoch from seq 1; every publication acked now arrives once, in order.
      for (let i = 0; i < 20; i++) await pub.b.publish(i % 2 === 0 ? a : c, { from: "u", data: i, ts: 1 });
      await waitFor(() => events.on(a).length === 11 && events.on(c).length === 10, "all twenty publications");
      expect(seqs(events, a)).toEqual([1, ...Array.from({ length: 10 }, (_, i) => i + 1)]);
      expect(seqs(events, c)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    } finally {
      await sub.b.close();
      await pub.b.close();
    }
  });

  test("Redis stopped (SIGSTOP): a subscribe fails `unavailable` within its deadline; the link is replaced and its topics reported", async () => {
    const events = new Restores();
    const [a, late] = [uniqueTopic(), uniqueTopic()];
    const { sub, pub } = await subscribed(events, [a]);
    try {
      const before = (await client(sub.name))?.match(/^id=(\d+)/)?.[1];

      redis.signal("SIGSTOP");
      const started = performance.now();
      const failure = await sub.b.subscribe(late).then(() => "resolved", (e: unknown) => e);
      expect(failure).toBeInstanceOf(SwitchboardError);
      expect((failure as SwitchboardError).code).toBe("unavailable");
      expect(performance.now() - started).toBeLessThan(3000); // the subscriber's deadline: 2 s
      // The link's PING misses the next deadline too (~4 s): it gives the connection up. Redis
      // answers again only after that, on the new connection.
      await Bun.sleep(5000 - (performance.now() - started));
      expect(sub.b.healthy).toBe(false);
      redis.signal("SIGCONT");

      await waitFor(() => events.restored.length >= 1, "onReconnect after SIGCONT", 8000);
      expect(events.restored.at(-1)).toEqual([a]);
      await waitFor(() => sub.b.healthy, "healthy again", 5000);
      const after = (await client(sub.name))?.match(/^id=(\d+)/)?.[1];
      expect(after).toBeDefined();
      expect(after).not.toBe(before);

      await sub.b.subscribe(late);
      const next = await pub.b.publish(a, { from: "u", data: 2, ts: 1 });
      await pub.b.publish(late, { from: "u", data: 3, ts: 1 });
      await waitFor(() => events.on(a).length === 2 && events.on(late).length === 1, "live delivery on the new link");
      expect(events.on(a)[1]!.seq).toBe(next.seq);
    } finally {
      redis.signal("SIGCONT");
      await sub.b.close();
      await pub.b.close();
    }
  });
});
