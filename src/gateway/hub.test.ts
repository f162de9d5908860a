/**
 * The hub's delivery rules on the memory broker, without sockets: in order, no duplicates,
 * gaps repaired from history or reported with resync, and since-recovery merged with live.
 */
import { describe, expect, test } from "bun:test";
import { MemoryBroker } from "../broker/memory.ts";
import type { Publication } from "../broker/broker.ts";
import { Hub, type Member } from "./hub.ts";
import { CATCH_UP_MS } from "./hub-topic.ts";

interface Frame {
  type: string;
  seq: number;
  epoch: string;
  data?: unknown;
}

function setup(options: { historySize?: number; historyTtlS?: number; ephemeral?: (topic: string) => boolean } = {}) {
  let clock = 1_000_000;
  const broker = new MemoryBroker({ historySize: options.historySize ?? 100, historyTtlS: options.historyTtlS ?? 300, now: () => clock });
  /** What each topic's local subscribers received, as Bun's server.publish would deliver it. */
  const delivered = new Map<string, Frame[]>();
  const local = new Map<string, Set<TestMember>>();
  let muted = false;
  /** Publications held back from the hub (this process behind the broker), or null: delivered at once. */
  let held: Publication[] | null = null;
  const hub = new Hub({
    broker,
    fanout(topic, frame) {
      const parsed = JSON.parse(frame) as Frame;
      (delivered.get(topic) ?? delivered.set(topic, []).get(topic)!).push(parsed);
      for (const m of local.get(topic) ?? []) m.frames.push(parsed);
    },
    retryMs: 10,
    ...(options.ephemeral === undefined ? {} : { isEphemeral: options.ephemeral }),
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
  void broker.start({
    onPublication: (p: Publication) => {
      if (held !== null) held.push(p);
      else if (!muted) hub.onPublication(p);
    },
    onEphemeral: (t, f) => hub.onEphemeral(t, f),
    onControl: () => {},
    onReconnect: () => hub.onReconnect(),
  });
  const publish = (n: number, topic = "room:a") =>
    Promise.all(Array.from({ length: n }, (_, i) => broker.publish(topic, { from: "t", data: i, ts: 0 })));
  return {
    broker,
    hub,
    delivered,
    TestMember,
    publish,
    mute: (on: boolean) => (muted = on),
    hold: () => (held = []),
    release() {
      const publications = held ?? [];
      held = null;
      for (const p of publications) hub.onPublication(p);
    },
    advance: (ms: number) => (clock += ms),
  };
}

const seqs = (frames: Frame[]) => frames.filter((f) => f.type === "message").map((f) => f.seq);
const settle = () => Bun.sleep(20);

/**
 * This process behind the broker: a member follows room:a, `delivered` publications reach the hub,
 * then `held` more reach the broker (and other machines) but not this process until `release()`.
 */
async function behind(delivered: number, held: number) {
  const t = setup();
  const first = new t.TestMember();
  await t.hub.subscribe(first, "room:a", undefined, () => {});
  await t.publish(delivered);
  const epoch = t.hub.position("room:a")!.epoch;
  t.hold();
  await t.publish(held);
  return { t, first, epoch };
}

describe("hub delivery", () => {
  test("publications reach local subscribers once each, in order", async () => {
    const t = setup();
    const m = new t.TestMember();
    await t.hub.subscribe(m, "room:a", undefined, () => {});
    await t.publish(50);
    expect(seqs(m.frames)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  test("a duplicate publication is dropped", async () => {
    const t = setup();
    const m = new t.TestMember();
    await t.hub.subscribe(m, "room:a", undefined, () => {});
    await t.publish(2);
    const again = (await t.broker.history("room:a", { seq: 0, epoch: t.hub.position("room:a")!.epoch })).publications;
    for (const p of again) t.hub.onPublication(p);
    expect(seqs(m.frames)).toEqual([1, 2]);
  });

  test("a gap is repaired from history before later publications", async () => {
    const t = setup();
    const m = new t.TestMember();
    await t.hub.subscribe(m, "room:a", undefined, () => {});
    await t.publish(2);
    t.mute(true);
    await t.publish(3); // 3, 4, 5 missed
    t.mute(false);
    await t.publish(2); // 6 arrives: gap
    await settle();
    expect(seqs(m.frames)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(m.frames.some((f) => f.type === "resync")).toBe(false);
  });

  test("a broker reconnect re-reads what was missed meanwhile", async () => {
    const t = setup();
    const m = new t.TestMember();
    await t.hub.subscribe(m, "room:a", undefined, () => {});
    t.mute(true);
    await t.publish(3);
    t.mute(false);
    t.hub.onReconnect();
    await settle();
    expect(seqs(m.frames)).toEqual([1, 2, 3]);
  });

  test("a reconnect that names its topics (one Redis Cluster shard's link) repairs only those", async () => {
    const t = setup();
    const [a, b] = [new t.TestMember(), new t.TestMember()];
    await t.hub.subscribe(a, "room:a", undefined, () => {});
    await t.hub.subscribe(b, "room:b", undefined, () => {});
    t.mute(true);
    await t.publish(2, "room:a");
    await t.publish(2, "room:b");
    t.mute(false);
    t.hub.onReconnect(["room:a"]);
    await settle();
    expect(seqs(a.frames)).toEqual([1, 2]);
    expect(seqs(b.frames)).toEqual([]);
  });

  test("a gap history cannot fill is reported with resync, then delivery goes on", async () => {
    const t = setup({ historySize: 2 });
    const m = new t.TestMember();
    await t.hub.subscribe(m, "room:a", undefined, () => {});
    await t.publish(1);
    t.mute(true);
    await t.publish(5); // 2..6 missed, history keeps 5, 6
    t.mute(false);
    await t.publish(1); // 7
    await settle();
    const resync = m.frames.find((f) => f.type === "resync")!;
    expect(resync).toMatchObject({ type: "resync", seq: 7 });
    expect(m.frames.findIndex((f) => f.type === "resync")).toBe(1);
    expect(seqs(m.frames)).toEqual([1]);
    await t.publish(1);
    expect(seqs(m.frames)).toEqual([1, 8]);
  });

  test("a new epoch sends resync before any of its messages, which then start at 1", async () => {
    const t = setup({ historyTtlS: 10 });
    const m = new t.TestMember();
    await t.hub.subscribe(m, "room:a", undefined, () => {});
    await t.publish(3);
    const oldEpoch = t.hub.position("room:a")!.epoch;
    t.advance(11_000); // the topic's history expires: its epoch is lost
    await t.publish(2);
    await settle();
    const after = m.frames.slice(3);
    expect(after[0]).toMatchObject({ type: "resync", seq: 0 });
    expect(after[0]!.epoch).not.toBe(oldEpoch);
    expect(after.slice(1).map((f) => [f.seq, f.epoch])).toEqual([
      [1, after[0]!.epoch],
      [2, after[0]!.epoch],
    ]);
  });
});

describe("hub recovery with since", () => {
  test("the ack comes first, then the missed publications, then live ones, without gap or duplicate", async () => {
    const t = setup();
    const first = new t.TestMember();
    await t.hub.subscribe(first, "room:a", undefined, () => {});
    await t.publish(10);
    const epoch = t.hub.position("room:a")!.epoch;
    const m = new t.TestMember();
    const acks: unknown[] = [];
    const joining = t.hub.subscribe(m, "room:a", { seq: 4, epoch }, (ack) => {
      acks.push(ack);
      m.frames.push({ type: "ack", seq: ack.seq, epoch: ack.epoch });
    });
    const publishing = t.publish(5); // races the history read
    await Promise.all([joining, publishing]);
    await t.publish(2);
    expect(acks).toHaveLength(1);
    expect(m.frames[0]!.type).toBe("ack");
    expect(seqs(m.frames)).toEqual(Array.from({ length: 13 }, (_, i) => i + 5));
  });

  test("since in another epoch, or too old for history, is not recovered", async () => {
    const t = setup({ historySize: 3 });
    await t.publish(10);
    const m = new t.TestMember();
    let recovered = null as boolean | null;
    await t.hub.subscribe(m, "room:a", { seq: 2, epoch: "nope" }, (a) => (recovered = a.recovered));
    expect(recovered).toBe(false);
    const epoch = t.hub.position("room:a")!.epoch;
    const m2 = new t.TestMember();
    await t.hub.subscribe(m2, "room:a", { seq: 2, epoch }, (a) => (recovered = a.recovered));
    expect(recovered).toBe(false);
    expect(m2.frames).toEqual([]);
  });

  test("since ahead of every publication of its epoch is not recovered (the broker says so), and leaves no floor behind", async () => {
    const t = setup();
    let recovered = null as boolean | null;
    const join = (since?: { seq: number; epoch: string }) => {
      const member = new t.TestMember();
      return t.hub.subscribe(member, "room:a", since, (a) => (recovered = a.recovered)).then(() => member);
    };
    await join();
    await t.publish(5);
    const epoch = t.hub.position("room:a")!.epoch;
    expect((await join({ seq: 9, epoch })).frames).toEqual([]);
    expect(recovered).toBe(false);
    expect(seqs((await join({ seq: 3, epoch })).frames)).toEqual([4, 5]);
    expect(recovered).toBe(true);
  });

  test("since ahead of this process but not of the broker (the client left a machine that was ahead): nothing it holds is sent again, nothing after it is missed", async () => {
    const { t, first, epoch } = await behind(5, 3); // 6..8 reach other machines, not this process yet
    const member = new t.TestMember();
    let recovered = null as boolean | null;
    const joined = t.hub.subscribe(member, "room:a", { seq: 8, epoch }, (a) => (recovered = a.recovered));
    await settle();
    expect(recovered).toBe(true);
    t.release();
    await joined;
    await t.publish(2);
    await settle();
    expect(seqs(member.frames)).toEqual([9, 10]);
    expect(seqs(first.frames)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  test("since ahead: what arrives after it while the hub catches up is sent once, in order, before the live ones", async () => {
    const { t, epoch } = await behind(2, 4); // 3..6 held; the client holds up to 4
    const member = new t.TestMember();
    const joined = t.hub.subscribe(member, "room:a", { seq: 4, epoch }, () => {});
    await settle();
    t.release(); // 3..6 in one step: 5 and 6 are after the client's position
    await joined;
    await t.publish(1);
    await settle();
    expect(seqs(member.frames)).toEqual([5, 6, 7]);
  });

  test("since ahead, and this process does not catch up (its link is down): live after CATCH_UP_MS, nothing missed (the client drops what it holds by seq)", async () => {
    const { t, epoch } = await behind(1, 2);
    const member = new t.TestMember();
    const left = new t.TestMember();
    const joined = t.hub.subscribe(member, "room:a", { seq: 3, epoch }, () => {});
    const gone = t.hub.subscribe(left, "room:a", { seq: 3, epoch }, () => {});
    await settle();
    t.hub.leave(left, "room:a"); // leaves while waiting: never subscribed locally
    const waited = performance.now();
    await Promise.all([joined, gone]);
    expect(performance.now() - waited).toBeGreaterThan(CATCH_UP_MS - 100);
    t.release();
    await t.publish(1);
    await settle();
    expect(seqs(member.frames)).toEqual([2, 3, 4]);
    expect(left.frames).toEqual([]);
  });

  test("the broker subscription lives while one member does", async () => {
    const t = setup();
    const a = new t.TestMember();
    const b = new t.TestMember();
    await t.hub.subscribe(a, "room:a", undefined, () => {});
    await t.hub.subscribe(b, "room:a", undefined, () => {});
    t.hub.leave(a, "room:a");
    expect(t.hub.topicsCount()).toBe(1);
    t.hub.leave(b, "room:a");
    expect(t.hub.topicsCount()).toBe(0);
    await t.publish(1);
    expect(b.frames).toEqual([]);
  });
});

describe("hub member counts (the deployment registry's report)", () => {
  test("one map kept up to date, and the topics whose counts changed since the last time asked", async () => {
    const t = setup();
    const [a, b] = [new t.TestMember(), new t.TestMember()];
    expect([...t.hub.takeCountChanges()!]).toEqual([]);
    await t.hub.subscribe(a, "room:a", undefined, () => {});
    const live = t.hub.memberCounts();
    expect([...live]).toEqual([["room:a", 1]]);
    expect([...t.hub.takeCountChanges()!]).toEqual(["room:a"]);
    await t.publish(2);
    expect(t.hub.memberCounts()).toBe(live);
    expect([...t.hub.takeCountChanges()!]).toEqual([]); // nobody joined or left
    await t.hub.subscribe(b, "room:a", undefined, () => {});
    expect([...live]).toEqual([["room:a", 2]]);
    expect(t.hub.joinNow(a, "room:b")).toBe(false); // not followed yet: nothing changes
    await t.hub.subscribe(a, "room:b", undefined, () => {});
    expect([...live]).toEqual([["room:a", 2], ["room:b", 1]]);
    expect([...t.hub.takeCountChanges()!]).toEqual(["room:a", "room:b"]);
    t.hub.leave(b, "room:a");
    t.hub.leave(a, "room:b");
    expect([...live]).toEqual([["room:a", 1]]);
    expect([...t.hub.takeCountChanges()!]).toEqual(["room:a", "room:b"]);
    t.hub.close();
    expect([...live]).toEqual([]);
    expect([...t.hub.takeCountChanges()!]).toEqual(["room:a"]);
  });

  test("a topic whose start failed leaves the counts", async () => {
    const t = setup();
    const a = new t.TestMember();
    t.broker.subscribe = async () => {
      throw new Error("the broker is down");
    };
    await expect(t.hub.subscribe(a, "room:x", undefined, () => {})).rejects.toThrow();
    expect([...t.hub.memberCounts()]).toEqual([]);
    expect(t.hub.topicsCount()).toBe(0);
  });
});

describe("hub membership races", () => {
  test("a member that leaves while its topic is still starting is never subscribed locally", async () => {
    const t = setup();
    const m = new t.TestMember();
    let acked = false;
    const joining = t.hub.subscribe(m, "room:race", undefined, () => (acked = true));
    t.hub.leave(m, "room:race"); // before the broker subscription and first read are done
    await joining;
    expect(acked).toBe(false);
    expect(t.hub.topicsCount()).toBe(0);
    await t.publish(1, "room:race");
    expect(m.frames).toEqual([]);
  });
});

describe("ephemeral topics (delivery: ephemeral)", () => {
  const ephemeral = (topic: string) => topic.startsWith("typing:");

  test("frames broadcast on the topic reach its members; no position, no history read", async () => {
    const t = setup({ ephemeral });
    const m = new t.TestMember();
    const acks: unknown[] = [];
    await t.hub.subscribe(m, "typing:a", undefined, (ack) => acks.push(ack));
    expect(acks).toEqual([{ seq: 0, epoch: "", recovered: false, replayed: 0 }]);
    await t.broker.broadcast("typing:a", JSON.stringify({ type: "message", topic: "typing:a", from: "u", data: 1, ts: 0 }));
    expect(m.frames).toEqual([{ type: "message", topic: "typing:a", from: "u", data: 1, ts: 0 } as unknown as Frame]);
    // Nothing was read or created at the ordering point: the broker holds no log for it.
    expect(t.broker.historyBytes).toBe(0);
    expect((await t.broker.history("typing:a")).position.seq).toBe(0);
  });

  test("since is never recovered and replays nothing", async () => {
    const t = setup({ ephemeral });
    const m = new t.TestMember();
    const acks: unknown[] = [];
    await t.hub.subscribe(m, "typing:a", { seq: 0, epoch: "x" }, (ack) => acks.push(ack));
    expect(acks).toEqual([{ seq: 0, epoch: "", recovered: false, replayed: 0 }]);
    expect(m.frames).toEqual([]);
  });

  test("a broker reconnect repairs nothing and sends no resync", async () => {
    const t = setup({ ephemeral });
    const m = new t.TestMember();
    await t.hub.subscribe(m, "typing:a", undefined, () => {});
    await t.hub.subscribe(m, "room:a", undefined, () => {});
    t.hub.onReconnect();
    await settle();
    expect(m.frames).toEqual([]);
    expect(t.delivered.get("typing:a")).toBeUndefined();
  });
});

describe("hub followedByOthers (the publisher's creation budget)", () => {
  const member = (t: ReturnType<typeof setup>, userId: string) => Object.assign(new t.TestMember(), { userId });

  test("the answer kept for a room of one user's sockets changes with the next join, not with a leave", async () => {
    const t = setup();
    const own = Array.from({ length: 20 }, () => member(t, "alice"));
    for (const m of own) await t.hub.subscribe(m, "room:a", undefined, () => {});
    expect(t.hub.followedByOthers("room:a", "alice")).toBe(false);
    expect(t.hub.followedByOthers("room:a", "alice")).toBe(false); // kept
    expect(t.hub.followedByOthers("room:a", "bob")).toBe(true); // another publisher: scanned

    const bob = member(t, "bob");
    await t.hub.subscribe(bob, "room:a", undefined, () => {});
    expect(t.hub.followedByOthers("room:a", "alice")).toBe(true);
    t.hub.leave(bob, "room:a");
    expect(t.hub.followedByOthers("room:a", "alice")).toBe(false);

    // A join without `since` on a started topic (joinNow) counts too.
    const carol = member(t, "carol");
    expect(t.hub.joinNow(carol, "room:a")).toBe(true);
    expect(t.hub.followedByOthers("room:a", "alice")).toBe(true);
    expect(t.hub.followedByOthers("room:unknown", "alice")).toBe(false);
  });
});
