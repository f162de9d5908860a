/**
 * The Broker conformance suite (src/broker/broker.ts): every implementation passes it unchanged.
 * `describeBroker(name, factory)` is called by test/broker.memory.test.ts and
 * test/broker.redis.test.ts. The factory builds one broker (one process of a deployment); the
 * suite starts it and closes it.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Broker, BrokerEvents, ControlMessage, HistoryPolicy, Publication } from "../../src/broker/broker.ts";

export interface BrokerFactoryOptions {
  historySize: number;
  historyTtlS: number;
  /** Per topic history (a namespace's `history`, SPEC §5); the two above apply without it. */
  historyFor?: (topic: string) => HistoryPolicy;
}
export type BrokerFactory = (options: BrokerFactoryOptions) => Broker | Promise<Broker>;

/** Records every event a broker emits. */
export class Recorder implements BrokerEvents {
  publications: Publication[] = [];
  ephemeral: { topic: string; frame: string }[] = [];
  control: ControlMessage[] = [];
  reconnects = 0;
  onPublication(p: Publication) {
    this.publications.push(p);
  }
  onEphemeral(topic: string, frame: string) {
    this.ephemeral.push({ topic, frame });
  }
  onControl(message: ControlMessage) {
    this.control.push(message);
  }
  onReconnect() {
    this.reconnects++;
  }
  on(topic: string): Publication[] {
    return this.publications.filter((p) => p.topic === topic);
  }
}

/** Polls `condition` every 5 ms until it holds or `timeoutMs` passes; throws with `what` then. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(5);
  }
}

let counter = 0;
/** A topic name no other test (or earlier run against the same Redis) uses. */
export function uniqueTopic(prefix = "room"): string {
  return `${prefix}:t${Date.now().toString(36)}${(counter++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

const input = (data: unknown, extra: { key?: string; from?: string } = {}) => ({
  from: extra.from ?? "u1",
  data,
  ts: 1_700_000_000_000,
  ...(extra.key === undefined ? {} : { key: extra.key }),
});

export function describeBroker(name: string, factory: BrokerFactory): void {
  describe(`Broker conformance: ${name}`, () => {
    const open: Broker[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((b) => b.close()));
    });

    async function start(options: Partial<BrokerFactoryOptions> = {}) {
      const broker = await factory({ historySize: 100, historyTtlS: 60, ...options });
      open.push(broker);
      const events = new Recorder();
      await broker.start(events);
      return { broker, events };
    }

    describe("seq and epoch", () => {
      test("seq starts at 1 and rises by exactly 1 per publication; the epoch stays the same", async () => {
        const { broker } = await start();
        const topic = uniqueTopic();
        const results = [];
        for (let i = 0; i < 5; i++) results.push(await broker.publish(topic, input(i)));
        expect(results.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
        expect(new Set(results.map((r) => r.epoch)).size).toBe(1);
        expect(results.every((r) => r.duplicate === false && r.epoch.length > 0)).toBe(true);
      });

      test("each topic has its own seq and epoch", async () => {
        const { broker } = await start();
        const [a, b] = [uniqueTopic(), uniqueTopic()];
        await broker.publish(a, input(1));
        await broker.publish(a, input(2));
        const first = await broker.publish(b, input(1));
        expect(first.seq).toBe(1);
      });

      test("a topic never published has seq 0 and an epoch that its first publication keeps", async () => {
        const { broker } = await start();
        const topic = uniqueTopic();
        const before = await broker.history(topic);
        expect(before.position.seq).toBe(0);
        expect(before.position.epoch.length).toBeGreaterThan(0);
        expect(before.publications).toEqual([]);
        expect(before.recovered).toBe(false);
        const published = await broker.publish(topic, input("x"));
        expect(published).toEqual({ seq: 1, epoch: before.position.epoch, duplicate: false });
      });

      test("latestSeq: 0 for a topic never published (asked without creating it), then the latest seq", async () => {
        const { broker } = await start();
        const topic = uniqueTopic();
        expect(await broker.latestSeq(topic)).toBe(0);
        await broker.publish(topic, input(1));
        await broker.publish(topic, input(2));
        expect(await broker.latestSeq(topic)).toBe(2);
      });

      test("a topic whose history expired gets a new epoch and seq restarts at 1", async () => {
        const { broker } = await start({ historyTtlS: 1 });
        const topic = uniqueTopic();
        const old = await broker.publish(topic, input(1));
        await broker.publish(topic, input(2));
        await Bun.sleep(1200);
        const after = await broker.history(topic, { seq: 2, epoch: old.epoch });
        expect(after.recovered).toBe(false);
        expect(after.position.seq).toBe(0);
        expect(after.position.epoch).not.toBe(old.epoch);
        const next = await broker.publish(topic, input(3));
        expect(next).toEqual({ seq: 1, epoch: after.position.epoch, duplicate: false });
      });
    });

    describe("the message frame", () => {
      test("is the complete message frame, serialized once, with the publication's position", async () => {
        const { broker, events } = await start();
        const topic = uniqueTopic();
        await broker.subscribe(topic);
        const data = { text: 'héllo "world" \u2028 ✓', n: [1, 2.5, null], nested: { ok: true } };
        const r = await broker.publish(topic, { from: "alice", data, ts: 1234567890123 });
        await waitFor(() => events.on(topic).length === 1, "the publication");
        const p = events.on(topic)[0]!;
        expect({ topic: p.topic, seq: p.seq, epoch: p.epoch }).toEqual({ topic, seq: r.seq, epoch: r.epoch });
        expect(JSON.parse(p.frame)).toEqual({ type: "message", topic, seq: 1, epoch: r.epoch, from: "alice", data, ts: 1234567890123 });
        expect(p.frame.startsWith(`{"type":"message","topic":`)).toBe(true);
      });

      test("data absent is published as null", async () => {
        const { broker } = await start();
        const topic = uniqueTopic();
        await broker.publish(topic, { from: "server", data: undefined, ts: 1 });
        const h = await broker.history(topic, { seq: 0, epoch: (await broker.history(topic)).position.epoch });
        expect(JSON.parse(h.publications[0]!.frame).data).toBeNull();
      });
    });

    describe("history", () => {
      test("since a kept seq: every later publication, in order, recovered", async () => {
        const { broker } = await start();
        const topic = uniqueTopic();
        let epoch = "";
        for (let i = 1; i <= 6; i++) epoch = (await broker.publish(topic, input(i))).epoch;
        const h = await broker.history(topic, { seq: 2, epoch });
        expect(h.recovered).toBe(true);
        expect(h.position).toEqual({ seq: 6, epoch });
        expect(h.publications.map((p) => p.seq)).toEqual([3, 4, 5, 6]);
        expect(h.publications.map((p) => JSON.parse(p.frame).data)).toEqual([3, 4, 5, 6]);
        expect(h.publications.every((p) => p.topic === topic && p.epoch === epoch)).toBe(true);
      });

      test("since 0 returns everything while nothing was trimmed", async () => {
        const { broker } = await start();
        const topic = uniqueTopic();
        const { epoch } = await broker.publish(topic, input(1));
        await broker.publish(topic, input(2));
        const h = await broker.history(topic, { seq: 0, epoch });
        expect(h.recovered).toBe(true);
        expect(h.publications.map((p) => p.seq)).toEqual([1, 2]);
      });

      test("since the latest seq: recovered with nothing to replay", async () => {
        const { broker } = await start();
        const topic = uniqueTopic();
        await broker.publish(topic, input(1));
        const { seq, epoch } = await broker.publish(topic, input(2));
        const h = await broker.history(topic, { seq, epoch });
        expect(h).toEqual({ position: { seq, epoch }, publications: [], recovered: true });
      });

      test("without since: the position only, never recovered", async () => {
        const { broker } = await start();
        const topic = uniqueTopic();
        const { epoch } = await broker.publish(topic, input(1));
        expect(await broker.history(topic)).toEqual({ position: { seq: 1, epoch }, publications: [], recovered: false });
      });

      test("since a trimmed seq: not recovered, nothing replayed (history keeps historySize)", async () => {
        const { broker } = await start({ historySize: 3 });
        const topic = uniqueTopic();
        let epoch = "";
        for (let i = 1; i <= 5; i++) epoch = (await broker.publish(topic, input(i))).epoch;
        const trimmed = await broker.history(topic, { seq: 1, epoch });
        expect(trimmed).toEqual({ position: { seq: 5, epoch }, publications: [], recovered: false });
        const kept = await broker.history(topic, { seq: 2, epoch });
        expect(kept.recovered).toBe(true);
        expect(kept.publications.map((p) => p.seq)).toEqual([3, 4, 5]);
      });

      test("since another epoch: not recovered", async () => {
        const { broker } = await start();
        const topic = uniqueTopic();
        const { epoch } = await broker.publish(topic, input(1));
        const h = await broker.history(topic, { seq: 0, epoch: `x${epoch}` });
        expect(h).toEqual({ position: { seq: 1, epoch }, publications: [], recovered: false });
      });

      test("since beyond the end: not recovered", async () => {
        const { broker } = await start();
        const topic = uniqueTopic();
        const { epoch } = await broker.publish(topic, input(1));
        const h = await broker.history(topic, { seq: 5, epoch });
        expect(h).toEqual({ position: { seq: 1, epoch }, publications: [], recovered: false });
      });

      test("historySize 0 keeps nothing: only since == latest recovers", async () => {
        const { broker } = await start({ historySize: 0 });
        const topic = uniqueTopic();
        await broker.publish(topic, input(1));
        const { epoch } = await broker.publish(topic, input(2));
        expect((await broker.history(topic, { seq: 1, epoch })).recovered).toBe(false);
        expect((await broker.history(topic, { seq: 2, epoch })).recovered).toBe(true);
      });

      test("historyFor sets size and TTL per topic (a namespace's history)", async () => {
        const small = uniqueTopic("small");
        const none = uniqueTopic("none");
        const brief = uniqueTopic("brief");
        const other = uniqueTopic("room");
        const policies: Record<string, HistoryPolicy> = { small: { size: 2, ttlS: 60 }, none: { size: 0, ttlS: 60 }, brief: { size: 100, ttlS: 1 } };
        const { broker } = await start({ historySize: 100, historyTtlS: 60, historyFor: (t) => policies[t.slice(0, t.indexOf(":"))] ?? { size: 100, ttlS: 60 } });
        const epochs: Record<string, string> = {};
        for (const topic of [small, none, brief, other]) for (let i = 1; i <= 4; i++) epochs[topic] = (await broker.publish(topic, input(i))).epoch;
        expect((await broker.history(small, { seq: 1, epoch: epochs[small]! })).recovered).toBe(false);
        expect((await broker.history(small, { seq: 2, epoch: epochs[small]! })).publications.map((p) => p.seq)).toEqual([3, 4]);
        expect((await broker.history(none, { seq: 3, epoch: epochs[none]! })).recovered).toBe(false);
        expect((await broker.history(other, { seq: 0, epoch: epochs[other]! })).publications).toHaveLength(4);
        await Bun.sleep(1200);
        expect((await broker.history(brief, { seq: 4, epoch: epochs[brief]! })).recovered).toBe(false);
        expect(await broker.history(other, { seq: 4, epoch: epochs[other]! })).toMatchObject({ recovered: true, position: { seq: 4 } });
      });
    });

    describe("idempotency keys", () => {
      test("the same key on the same topic returns the first position and publishes nothing", async () => {
        const { broker, events } = await start();
        const topic = uniqueTopic();
        await broker.subscribe(topic);
        const first = await broker.publish(topic, input("a", { key: "k1" }));
        const again = await broker.publish(topic, input("b", { key: "k1" }));
        expect(again).toEqual({ seq: first.seq, epoch: first.epoch, duplicate: true });
        const other = await broker.publish(topic, input("c", { key: "k2" }));
        expect(other.seq).toBe(first.seq + 1);
        await waitFor(() => events.on(topic).length === 2, "two publications");
        await Bun.sleep(50);
        expect(events.on(topic).map((p) => JSON.parse(p.frame).data)).toEqual(["a", "c"]);
        expect((await broker.history(topic)).position.seq).toBe(2);
      });

      test("keys are per topic", async () => {
        const { broker } = await start();
        const [a, b] = [uniqueTopic(), uniqueTopic()];
        await broker.publish(a, input(1, { key: "same" }));
        const onB = await broker.publish(b, input(1, { key: "same" }));
        expect(onB.duplicate).toBe(false);
      });

      test("concurrent retries with one key publish once", async () => {
        const { broker } = await start();
        const topic = uniqueTopic();
        const results = await Promise.all(Array.from({ length: 10 }, () => broker.publish(topic, input("x", { key: "retry" }))));
        expect(results.filter((r) => !r.duplicate).length).toBe(1);
        expect(new Set(results.map((r) => r.seq))).toEqual(new Set([1]));
        expect((await broker.history(topic)).position.seq).toBe(1);
      });
    });

    describe("subscriptions", () => {
      test("publications arrive only for subscribed topics, in publish order", async () => {
        const { broker, events } = await start();
        const [wanted, other] = [uniqueTopic(), uniqueTopic()];
        await broker.subscribe(wanted);
        for (let i = 1; i <= 20; i++) {
          await broker.publish(wanted, input(i));
          await broker.publish(other, input(i));
        }
        await waitFor(() => events.on(wanted).length === 20, "20 publications");
        await Bun.sleep(50);
        expect(events.on(other)).toEqual([]);
        expect(events.on(wanted).map((p) => p.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      });

      test("subscribe is idempotent: each publication arrives once", async () => {
        const { broker, events } = await start();
        const topic = uniqueTopic();
        await broker.subscribe(topic);
        await broker.subscribe(topic);
        await broker.publish(topic, input(1));
        await waitFor(() => events.on(topic).length === 1, "the publication");
        await Bun.sleep(50);
        expect(events.on(topic).length).toBe(1);
      });

      test("after unsubscribe nothing arrives; subscribing again resumes", async () => {
        const { broker, events } = await start();
        const topic = uniqueTopic();
        await broker.subscribe(topic);
        await broker.publish(topic, input(1));
        await waitFor(() => events.on(topic).length === 1, "the first publication");
        await broker.unsubscribe(topic);
        await broker.unsubscribe(topic);
        await broker.publish(topic, input(2));
        await Bun.sleep(50);
        expect(events.on(topic).length).toBe(1);
        await broker.subscribe(topic);
        await broker.publish(topic, input(3));
        await waitFor(() => events.on(topic).length === 2, "the third publication");
        expect(events.on(topic).map((p) => p.seq)).toEqual([1, 3]);
      });

      test("concurrent publishes on several topics: contiguous seqs, delivered in seq order", async () => {
        const { broker, events } = await start();
        const topics = [uniqueTopic(), uniqueTopic(), uniqueTopic()];
        for (const t of topics) await broker.subscribe(t);
        const results = await Promise.all(
          Array.from({ length: 150 }, (_, i) => broker.publish(topics[i % 3]!, input(i)).then((r) => ({ topic: topics[i % 3]!, ...r }))),
        );
        for (const t of topics) {
          const seqs = results.filter((r) => r.topic === t).map((r) => r.seq).sort((a, b) => a - b);
          expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        }
        await waitFor(() => events.publications.length === 150, "150 publications");
        for (const t of topics) {
          expect(events.on(t).map((p) => p.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        }
      });
    });

    describe("ephemeral frames and control messages", () => {
      test("broadcast reaches subscribers of the topic only, without a seq or a history entry", async () => {
        const { broker, events } = await start();
        const [topic, other] = [uniqueTopic(), uniqueTopic()];
        await broker.subscribe(topic);
        const frame = JSON.stringify({ type: "presence.join", topic, user: { id: "u1", name: "alice" } });
        await broker.broadcast(topic, frame);
        await broker.broadcast(other, frame);
        await waitFor(() => events.ephemeral.length === 1, "the ephemeral frame");
        await Bun.sleep(50);
        expect(events.ephemeral).toEqual([{ topic, frame }]);
        expect(events.publications).toEqual([]);
        expect((await broker.history(topic)).position.seq).toBe(0);
      });

      test("control messages reach this process too", async () => {
        const { broker, events } = await start();
        await broker.sendControl({ type: "revoke-session", sid: "sid-1" });
        await waitFor(() => events.control.length === 1, "the control message");
        expect(events.control).toEqual([{ type: "revoke-session", sid: "sid-1" }]);
      });
    });

    test("is healthy once started; close resolves and can be called twice", async () => {
      const broker = await factory({ historySize: 10, historyTtlS: 60 });
      await broker.start(new Recorder());
      expect(broker.healthy).toBe(true);
      await broker.close();
      await broker.close();
    });
  });
}
