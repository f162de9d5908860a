/**
 * SPEC §3 "Delivery": every subscriber gets every publication once, in one per-topic order with
 * contiguous `seq`; `since` replays what a client missed with no gap or duplicate, or says
 * `recovered:false` when it cannot.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll, type Frame } from "./support/client.ts";
import { session, startServer, type TestServer, killAllServers } from "./support/server.ts";

const HISTORY_SIZE = 100;
let server: TestServer;
const clients = new Set<TestClient>();

beforeAll(async () => {
  server = await startServer({
    HISTORY_SIZE: String(HISTORY_SIZE),
    RATE_LIMIT_PER_S: "100000",
    RATE_LIMIT_BURST: "100000",
    MAX_CONNECTIONS_PER_IP: "1000",
    MAX_CONNECTIONS_PER_USER: "1000",
  });
}, 30_000);
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  killAllServers();
});

async function connect(user: string): Promise<TestClient> {
  const s = await session(server, user);
  const c = await TestClient.connect(server.wsUrl, { cookie: s.cookie }, 10_000);
  clients.add(c);
  return c;
}

/** Asserts that `msgs` have seq first, first+1, … and the same epoch. */
function expectContiguous(msgs: Frame[], first: number, epoch: string) {
  const seqs = msgs.map((m) => m.seq);
  const expected = Array.from({ length: msgs.length }, (_, i) => first + i);
  expect(seqs).toEqual(expected);
  expect(new Set(msgs.map((m) => m.epoch))).toEqual(new Set([epoch]));
}

describe("every subscriber receives every publication once, in order", () => {
  test("1,000 publications to 100 subscribers arrive complete, in order, with contiguous seq", async () => {
    const topic = "room:fanout";
    const users = ["alice", "bob", "carol"];
    const subs: TestClient[] = [];
    for (let i = 0; i < 100; i += 20) {
      subs.push(...(await Promise.all(Array.from({ length: 20 }, (_, j) => connect(users[(i + j) % 3]!)))));
    }
    const acks = await Promise.all(subs.map((c) => c.subscribe(topic)));
    const { seq: s0, epoch } = acks[0]!;
    for (const a of acks) expect(a).toMatchObject({ seq: s0, epoch });

    const publisher = await connect("alice");
    const started = performance.now();
    const replies = Array.from({ length: 1000 }, (_, i) => publisher.request({ type: "publish", topic, data: { i } }, 15_000));
    const pubAcks = await Promise.all(replies);
    expect(pubAcks.map((a) => a.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => s0 + 1 + i));
    const received = await Promise.all(subs.map((c) => c.waitMessages(topic, 1000, 20_000)));
    const elapsed = performance.now() - started;
    for (const msgs of received) {
      expect(msgs).toHaveLength(1000);
      expectContiguous(msgs, s0 + 1, epoch);
      expect(msgs.map((m) => m.data.i)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    }
    console.log(`fan-out: 1,000 publications × 100 subscribers delivered in ${elapsed.toFixed(0)} ms`);
    await Bun.sleep(50);
    for (const c of subs) expect(c.messages.get(topic)).toHaveLength(1000); // no duplicates after the fact
    await closeAll(subs);
    for (const c of subs) clients.delete(c);
  }, 30_000);

  test("concurrent publishers: every subscriber sees the same single order", async () => {
    const topic = "room:order";
    const subs = await Promise.all([connect("alice"), connect("bob"), connect("carol"), connect("bob")]);
    const acks = await Promise.all(subs.map((c) => c.subscribe(topic)));
    const [p1, p2] = await Promise.all([connect("alice"), connect("carol")]);
    await Promise.all([
      Promise.all(Array.from({ length: 200 }, (_, i) => p1.request({ type: "publish", topic, data: `a${i}` }))),
      Promise.all(Array.from({ length: 200 }, (_, i) => p2.request({ type: "publish", topic, data: `b${i}` }))),
    ]);
    const all = await Promise.all(subs.map((c) => c.waitMessages(topic, 400, 10_000)));
    const reference = all[0]!.map((m) => `${m.seq}:${m.data}`);
    for (const msgs of all) {
      expectContiguous(msgs, acks[0]!.seq + 1, acks[0]!.epoch);
      expect(msgs.map((m) => `${m.seq}:${m.data}`)).toEqual(reference);
    }
    // Each publisher's own messages keep the order it sent them in.
    const aOrder = all[0]!.map((m) => m.data as string).filter((d) => d.startsWith("a"));
    expect(aOrder).toEqual(Array.from({ length: 200 }, (_, i) => `a${i}`));
  }, 30_000);
});

describe("subscribe with since", () => {
  test("replays what was missed, in order, then live ones with no gap or duplicate while publishing goes on", async () => {
    const topic = "room:resume";
    const watcher = await connect("alice");
    const { seq: s0, epoch } = await watcher.subscribe(topic);
    const publisher = await connect("bob");
    for (let i = 0; i < 30; i++) await publisher.publish(topic, i);

    // Publishing continues, one at a time, while the late client subscribes with `since`.
    let published = 30;
    const background = (async () => {
      for (let i = 30; i < 80; i++) {
        await publisher.publish(topic, i);
        published++;
        if (i % 5 === 0) await Bun.sleep(1);
      }
    })();
    while (published < 35) await Bun.sleep(1);

    const late = await connect("carol");
    const lastSeen = s0 + 10; // it had seen the first 10 before it went away
    const ack = await late.request({ type: "subscribe", topic, since: { seq: lastSeen, epoch }, ref: 77 });
    expect(ack).toMatchObject({ type: "ack", ref: 77, topic, epoch, recovered: true });
    expect(ack.seq).toBeGreaterThanOrEqual(s0 + 35);
    await background;

    const msgs = await late.waitMessages(topic, 80 - 10, 10_000);
    await Bun.sleep(50);
    expect(late.messages.get(topic)).toHaveLength(70);
    expectContiguous(msgs, lastSeen + 1, epoch);
    expect(msgs.map((m) => m.data)).toEqual(Array.from({ length: 70 }, (_, i) => i + 10));
    // The ack precedes every message of the topic.
    const ackIndex = late.frames.indexOf(ack);
    const firstMsg = late.frames.findIndex((f) => f.type === "message" && f.topic === topic);
    expect(ackIndex).toBeLessThan(firstMsg);
    // The watcher that never left saw the very same sequence.
    expect((await watcher.waitMessages(topic, 80)).slice(10).map((m) => m.seq)).toEqual(msgs.map((m) => m.seq));
  }, 30_000);

  /** alice subscribed to `topic` and published three messages to it: her client and the last one. */
  async function threePublished(topic: string) {
    const c = await connect("alice");
    await c.subscribe(topic);
    for (let i = 0; i < 3; i++) await c.publish(topic, i);
    return { c, last: (await c.waitMessages(topic, 3))[2]! };
  }

  test("since the latest position: recovered:true and nothing replayed", async () => {
    const topic = "room:uptodate";
    const { c, last } = await threePublished(topic);
    const again = await connect("alice");
    const ack = await again.subscribe(topic, { seq: last.seq, epoch: last.epoch });
    expect(ack).toMatchObject({ recovered: true, seq: last.seq, epoch: last.epoch });
    await c.publish(topic, "live");
    const [live] = await again.waitMessages(topic, 1);
    expect(live).toMatchObject({ seq: last.seq + 1, data: "live" });
    await Bun.sleep(50);
    expect(again.messages.get(topic)).toHaveLength(1);
  });

  test("since a position older than the history (HISTORY_SIZE) → recovered:false, no partial replay, live goes on", async () => {
    const topic = "room:too-old";
    const c = await connect("alice");
    const { seq: s0, epoch } = await c.subscribe(topic);
    const n = HISTORY_SIZE * 2 + 50;
    await Promise.all(Array.from({ length: n }, (_, i) => c.request({ type: "publish", topic, data: i }, 10_000)));
    const late = await connect("bob");
    const ack = await late.subscribe(topic, { seq: s0 + 1, epoch });
    expect(ack).toMatchObject({ recovered: false, seq: s0 + n, epoch });
    await c.publish(topic, "live");
    const [live] = await late.waitMessages(topic, 1);
    expect(live).toMatchObject({ seq: s0 + n + 1, data: "live" });
    await Bun.sleep(50);
    expect(late.messages.get(topic)).toHaveLength(1);
  }, 30_000);

  test("since a seq the topic never reached (same epoch) → recovered:false, not a replay of nothing that the client would follow by dropping the live ones as duplicates", async () => {
    const topic = "room:ahead";
    const { last } = await threePublished(topic);
    const ahead = await connect("bob");
    const ack = await ahead.subscribe(topic, { seq: last.seq + 5, epoch: last.epoch });
    expect(ack).toMatchObject({ recovered: false, seq: last.seq, epoch: last.epoch });
    // That read leaves nothing behind: a real position inside the history still recovers.
    const behind = await connect("carol");
    const ok = await behind.subscribe(topic, { seq: last.seq - 2, epoch: last.epoch });
    expect(ok).toMatchObject({ recovered: true, seq: last.seq });
    expect((await behind.waitMessages(topic, 2)).map((m) => m.seq)).toEqual([last.seq - 1, last.seq]);
  });

  test("since another epoch → recovered:false with the current position", async () => {
    const topic = "room:other-epoch";
    const c = await connect("alice");
    const { epoch } = await c.subscribe(topic);
    await c.publish(topic, 1);
    await c.publish(topic, 2);
    const late = await connect("bob");
    const ack = await late.subscribe(topic, { seq: 1, epoch: `${epoch}-not` });
    expect(ack).toMatchObject({ recovered: false, epoch });
    expect(ack.seq).toBe((await c.waitMessages(topic, 2))[1]!.seq);
    await Bun.sleep(50);
    expect(late.messages.get(topic)).toBeUndefined();
  });
});

describe("no server faults", () => {
  test("the server logged no error, stack trace or unhandled rejection", async () => {
    await Bun.sleep(50);
    expect(server.faults()).toEqual([]);
  });
});
