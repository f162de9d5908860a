/**
 * The chaos checker's rules (bench/chaos/check.ts) on hand-written logs: each violation it exists
 * to find is found, and the documented allowances are counted, not reported.
 */
import { describe, expect, test } from "bun:test";
import { check } from "./check.ts";
import type { ClientLog, LogEvent, PublishRecord, TopicHistory } from "./log.ts";

const T = "room:t";
const msg = (seq: number, epoch = "e1", k = `k${seq}`) => ({ type: "message", topic: T, seq, epoch, from: "u", data: { k }, ts: 0 });
let clock = 0;
const ev = (conn: number, e: Record<string, unknown>): LogEvent => ({ t: clock++, conn, ...e }) as LogEvent;

/** One client: a connect, a subscribe without `since` acked at `start`, then `frames`. */
function client(start: number, frames: unknown[], epoch = "e1"): ClientLog {
  return {
    id: "c",
    events: [
      ev(1, { kind: "connect", port: 1 }),
      ev(1, { kind: "subscribe", ref: 1, topic: T, since: null }),
      ev(1, { kind: "frame", frame: { type: "ack", ref: 1, topic: T, seq: start, epoch, recovered: false } }),
      ...frames.map((frame) => ev(1, { kind: "frame", frame })),
    ],
  };
}

const history = (seq: number, epoch = "e1", from = 1): TopicHistory => ({
  topic: T,
  epoch,
  seq,
  messages: Array.from({ length: seq - from + 1 }, (_, i) => ({ seq: from + i, epoch, data: { k: `k${from + i}` } })),
});

const kinds = (r: ReturnType<typeof check>) => r.violations.map((v) => v.kind);

describe("chaos checker", () => {
  test("a clean stream passes", () => {
    const r = check({ clients: [client(0, [msg(1), msg(2), msg(3)])], publishes: [], histories: [history(3)], faults: [] });
    expect(r.violations).toEqual([]);
  });

  test("a gap, a duplicate, a new epoch without resync, a client left behind", () => {
    expect(kinds(check({ clients: [client(0, [msg(1), msg(3)])], publishes: [], histories: [history(3)], faults: [] }))).toEqual(["gap"]);
    expect(kinds(check({ clients: [client(0, [msg(1), msg(2), msg(2)])], publishes: [], histories: [history(2)], faults: [] }))).toEqual(["duplicate"]);
    expect(kinds(check({ clients: [client(0, [msg(1), msg(1, "e2")])], publishes: [], histories: [history(1, "e2")], faults: [] }))).toEqual([
      "new epoch without resync",
    ]);
    expect(kinds(check({ clients: [client(0, [msg(1)])], publishes: [], histories: [history(2)], faults: [] }))).toEqual(["behind at the end"]);
  });

  test("a resync accounts for a gap and a new epoch", () => {
    const frames = [msg(1), { type: "resync", topic: T, seq: 0, epoch: "e2" }, msg(1, "e2", "x1"), msg(2, "e2", "x2")];
    const h: TopicHistory = { topic: T, epoch: "e2", seq: 2, messages: [msg(1, "e2", "x1"), msg(2, "e2", "x2")] };
    expect(check({ clients: [client(0, frames)], publishes: [], histories: [h], faults: [] }).violations).toEqual([]);
  });

  test("one seq with two data, one key at two seqs, an acked publication missing from history", () => {
    const a = client(0, [msg(1, "e1", "a")]);
    const b = client(0, [msg(1, "e1", "b")]);
    expect(kinds(check({ clients: [a, b], publishes: [], histories: [], faults: [] }))).toEqual(["different data for one seq"]);
    const twice: PublishRecord = { key: "k", topic: T, via: "http", data: { k: "k" }, attempts: [{ t0: 0, t1: 1, outcome: "acked", seq: 1, epoch: "e1" }] };
    const r = check({ clients: [client(0, [msg(1, "e1", "k"), msg(2, "e1", "k")])], publishes: [twice], histories: [], faults: [] });
    expect(kinds(r)).toEqual(["one key, two seqs"]);
    const lost: PublishRecord = { key: "k5", topic: T, via: "ws", data: { k: "k5" }, attempts: [{ t0: 0, t1: 1, outcome: "acked", seq: 5, epoch: "e1" }] };
    expect(kinds(check({ clients: [], publishes: [lost], histories: [history(4)], faults: [] }))).toEqual(["acked publication missing from history"]);
  });

  test("published after unavailable: a violation, unless Redis was stalled then (docs/protocol.md)", () => {
    const told: PublishRecord = { key: "k1", topic: T, via: "http", data: { k: "k1" }, attempts: [{ t0: 100, t1: 200, outcome: "unavailable" }] };
    expect(kinds(check({ clients: [], publishes: [told], histories: [history(1)], faults: [] }))).toEqual(["published after unavailable"]);
    const stalled = check({ clients: [], publishes: [told], histories: [history(1)], faults: [{ kind: "redis-stop-long", target: "redis", start: 50, end: 1500 }] });
    expect(stalled.violations).toEqual([]);
    expect(stalled.allowances.map((a) => a.kind)).toEqual(["applied after unavailable"]);
  });

  test("a duplicate after a resubscribe answered by a machine behind is allowed (docs/protocol.md)", () => {
    const log: ClientLog = {
      id: "c",
      events: [
        ...client(0, [msg(1), msg(2)]).events,
        ev(2, { kind: "connect", port: 2 }),
        ev(2, { kind: "subscribe", ref: 2, topic: T, since: { epoch: "e1", seq: 2 } }),
        ev(2, { kind: "frame", frame: { type: "ack", ref: 2, topic: T, seq: 1, epoch: "e1", recovered: true } }),
        ev(2, { kind: "frame", frame: msg(2) }),
        ev(2, { kind: "frame", frame: msg(3) }),
      ],
    };
    const r = check({ clients: [log], publishes: [], histories: [history(3)], faults: [] });
    expect(r.violations).toEqual([]);
    expect(r.allowances.map((a) => a.kind)).toEqual(["duplicate after resubscribe"]);
  });
});
