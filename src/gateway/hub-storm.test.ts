/**
 * Reconnect storms at the hub (topic-recovery.ts): many `since` subscribes to one topic at once
 * share their history reads, and each socket still gets exactly what it missed, in order, then
 * live publications without gap or duplicate. On the memory broker, without sockets.
 */
import { describe, expect, test } from "bun:test";
import { MemoryBroker } from "../broker/memory.ts";
import type { Position } from "../broker/broker.ts";
import { Hub, type Member } from "./hub.ts";

interface Frame {
  type: string;
  seq: number;
  epoch: string;
  recovered?: boolean;
}

function setup(historySize = 100) {
  let clock = 1_000_000;
  const broker = new MemoryBroker({ historySize, historyTtlS: 300, now: () => clock });
  const local = new Map<string, Set<TestMember>>();
  const reads: string[] = [];
  const hub = new Hub({
    broker,
    fanout(topic, frame) {
      for (const m of local.get(topic) ?? []) m.frames.push(JSON.parse(frame));
    },
    replayCacheSize: () => historySize,
    onHistoryRead: (topic, reason) => reads.push(`${reason} ${topic}`),
  });
  class TestMember implements Member {
    userId: string | null = null;
    frames: Frame[] = [];
    send(frame: string) {
      this.frames.push(JSON.parse(frame));
    }
    subscribeLocal(topic: string) {
      (local.get(topic) ?? local.set(topic, new Set()).get(topic)!).add(this);
    }
    unsubscribeLocal(topic: string) {
      local.get(topic)?.delete(this);
    }
  }
  void broker.start({ onPublication: (p) => hub.onPublication(p), onEphemeral: () => {}, onControl: () => {}, onReconnect: () => hub.onReconnect() });
  const publish = (n: number, topic = "room:s") => Promise.all(Array.from({ length: n }, (_, i) => broker.publish(topic, { from: "t", data: i, ts: 0 })));
  const join = (m: TestMember, since: Position | undefined, topic = "room:s") =>
    hub.subscribe(m, topic, since, (ack) => m.frames.push({ type: "ack", seq: ack.seq, epoch: ack.epoch, recovered: ack.recovered }));
  return { broker, hub, reads, TestMember, publish, join, advance: (ms: number) => (clock += ms) };
}

const seqs = (frames: Frame[]) => frames.filter((f) => f.type === "message").map((f) => f.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("a storm of since subscribes", () => {
  test("300 sockets resume at 300 different points while publications race: each gets exactly what it missed, then live; history read at most 3 times", async () => {
    const t = setup();
    const anchor = new t.TestMember();
    await t.join(anchor, undefined);
    await t.publish(80);
    const epoch = t.hub.position("room:s")!.epoch;
    t.reads.length = 0;
    const members = Array.from({ length: 300 }, () => new t.TestMember());
    const sinces = members.map((_, i) => 20 + (i % 60));
    const joining = Promise.all(members.map((m, i) => t.join(m, { seq: sinces[i]!, epoch })));
    const racing = t.publish(15);
    await Promise.all([joining, racing]);
    await t.publish(5);
    for (const [i, m] of members.entries()) {
      expect(m.frames[0]).toMatchObject({ type: "ack", recovered: true });
      expect(seqs(m.frames)).toEqual(range(sinces[i]! + 1, 100));
    }
    expect(t.reads.filter((r) => r.startsWith("since")).length).toBeLessThanOrEqual(3);
  });

  test("later sockets resume from memory: no read at all while the topic is followed", async () => {
    const t = setup();
    const anchor = new t.TestMember();
    await t.join(anchor, undefined);
    await t.publish(30);
    const epoch = t.hub.position("room:s")!.epoch;
    const first = new t.TestMember();
    await t.join(first, { seq: 10, epoch });
    t.reads.length = 0;
    await t.publish(10);
    // Every since up to the position delivered here (one ahead of it needs the broker: hub.test.ts).
    const later = Array.from({ length: 31 }, () => new t.TestMember());
    await Promise.all(later.map((m, i) => t.join(m, { seq: 10 + i, epoch })));
    for (const [i, m] of later.entries()) expect(seqs(m.frames)).toEqual(range(11 + i, 40));
    expect(t.reads).toEqual([]);
  });

  test("a since older than the kept history is not recovered, and older ones then need no read", async () => {
    const t = setup(10);
    const anchor = new t.TestMember();
    await t.join(anchor, undefined);
    await t.publish(50);
    const epoch = t.hub.position("room:s")!.epoch;
    t.reads.length = 0;
    const a = new t.TestMember();
    await t.join(a, { seq: 20, epoch });
    const older = Array.from({ length: 20 }, () => new t.TestMember());
    await Promise.all(older.map((m, i) => t.join(m, { seq: i, epoch })));
    for (const m of [a, ...older]) {
      expect(m.frames[0]).toMatchObject({ type: "ack", recovered: false });
      expect(seqs(m.frames)).toEqual([]);
    }
    expect(t.reads).toEqual(["since room:s"]);
  });

  test("after a resync the replay cache is gone: a since of the old epoch is not recovered", async () => {
    const t = setup();
    const anchor = new t.TestMember();
    await t.join(anchor, undefined);
    await t.publish(10);
    const old = t.hub.position("room:s")!.epoch;
    await t.join(new t.TestMember(), { seq: 2, epoch: old });
    t.advance(301_000); // the topic's history expires: its epoch is lost
    await t.publish(3);
    await Bun.sleep(20);
    const m = new t.TestMember();
    await t.join(m, { seq: 5, epoch: old });
    expect(m.frames[0]).toMatchObject({ type: "ack", recovered: false });
    expect(seqs(m.frames)).toEqual([]);
  });
});
