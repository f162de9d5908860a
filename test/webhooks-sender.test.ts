/**
 * WebhookSender (SPEC §6) against a real HTTP receiver: the body and its signature, retries with
 * the same id and a fresh signature, backoff, timeouts, per-topic order with a failing topic, and
 * giving up after WEBHOOK_MAX_AGE_S. Backoff and timeouts are shortened; the rules are the same.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { verifySignature } from "../src/auth/signature.ts";
import type { Logger } from "../src/log.ts";
import { MemoryOutbox } from "../src/webhooks/memory-outbox.ts";
import { newEvent, orderingKey } from "../src/webhooks/events.ts";
import { WebhookSender, type WebhookSenderOptions } from "../src/webhooks/sender.ts";
import { startReceiver, type WebhookReceiver } from "./support/webhook-receiver.ts";
import { waitFor } from "./suites/broker.suite.ts";

const SECRET = "webhook-secret-0123456789abcdef-0123456789";

function recordingLogger(lines: { level: string; msg: string; fields?: Record<string, unknown> }[]): Logger {
  const log = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  const logger: Logger = { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error"), child: () => logger };
  return logger;
}

const counter = () => ({
  n: 0,
  inc() {
    this.n++;
  },
});

interface Rig {
  receiver: WebhookReceiver;
  outbox: MemoryOutbox;
  sender: WebhookSender;
  counters: { webhooksSent: ReturnType<typeof counter>; webhooksFailed: ReturnType<typeof counter>; webhooksRetried: ReturnType<typeof counter> };
  logs: { level: string; msg: string; fields?: Record<string, unknown> }[];
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const rig of rigs.splice(0)) {
    await rig.sender.close();
    await rig.outbox.close();
    await rig.receiver.stop();
  }
});

async function rig(options: Partial<WebhookSenderOptions> = {}): Promise<Rig> {
  const receiver = startReceiver(SECRET);
  const outbox = new MemoryOutbox();
  await outbox.start();
  const counters = { webhooksSent: counter(), webhooksFailed: counter(), webhooksRetried: counter() };
  const logs: Rig["logs"] = [];
  const sender = new WebhookSender({
    outbox,
    url: receiver.url,
    secret: SECRET,
    maxAgeS: 3600,
    log: recordingLogger(logs),
    counters,
    attemptTimeoutMs: 300,
    backoff: { baseMs: 100, maxMs: 1000 },
    ...options,
  });
  sender.start();
  const r = { receiver, outbox, sender, counters, logs };
  rigs.push(r);
  return r;
}

const tOf = (signature: string | null) => Number(/t=(\d+)/.exec(signature ?? "")?.[1]);

describe("webhook requests", () => {
  test("POST {id, type, at, data} with a Switchboard-Signature that verifySignature accepts; a 2xx ends it", async () => {
    const { receiver, outbox, counters } = await rig();
    const event = newEvent("presence.join", { topic: "room:a", user: { id: "u1", name: "alice" } });
    await outbox.append(orderingKey.topic("room:a"), event);
    await waitFor(() => receiver.received.length === 1, "one request");
    const [got] = receiver.received;
    expect(JSON.parse(got!.raw)).toEqual(event);
    expect(Object.keys(JSON.parse(got!.raw))).toEqual(["id", "type", "at", "data"]);
    expect(() => verifySignature(got!.raw, got!.signature, SECRET)).not.toThrow();
    expect(() => verifySignature(got!.raw, got!.signature, `${SECRET}-other`)).toThrow("does not match");
    await waitFor(() => counters.webhooksSent.n === 1, "sent counted");
    await Bun.sleep(300);
    expect(receiver.received.length).toBe(1);
    expect(await outbox.stats()).toEqual({ length: 0, oldestAt: null });
  });
});

describe("retries: anything but a 2xx, or no answer in time, is retried with the same id", () => {
  test("a receiver that redirects, stalls, fails and recovers gets the same event four times, each signed when sent, with growing delays", async () => {
    const { receiver, outbox, counters } = await rig({ backoff: { baseMs: 400, maxMs: 5000 } });
    const answers = [302, "stall", 500, 200] as const;
    receiver.answer = () => answers[Math.min(receiver.received.length, 3)]!;
    const event = newEvent("user.online", { user: { id: "u1", name: "alice" } });
    await outbox.append(orderingKey.user("u1"), event);
    await waitFor(() => receiver.delivered().length === 1, "delivered after recovering", 8000);
    expect(receiver.received.map((r) => r.status)).toEqual([302, "stall", 500, 200]);
    expect(new Set(receiver.received.map((r) => r.event.id))).toEqual(new Set([event.id]));
    for (const r of receiver.received) expect(Math.abs(tOf(r.signature) - r.receivedAt / 1000)).toBeLessThanOrEqual(1.01);
    expect(tOf(receiver.received[3]!.signature)).toBeGreaterThan(tOf(receiver.received[0]!.signature));
    const at = receiver.received.map((r) => r.receivedAt);
    // 302 → ~400 ms; stall: 300 ms timeout + ~800 ms; 500 → ~1600 ms (±20 %).
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(300);
    expect(at[1]! - at[0]!).toBeLessThan(700);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(300 + 640 - 20);
    expect(at[3]! - at[2]!).toBeGreaterThanOrEqual(1280 - 20);
    // The receiver records the 200 before the sender has read it: the sent count follows.
    await waitFor(() => counters.webhooksSent.n === 1, "the sent count", 2000);
    expect(counters.webhooksRetried.n).toBe(3);
    expect(counters.webhooksSent.n).toBe(1);
    expect(counters.webhooksFailed.n).toBe(0);
  });

  test("a refused connection is retried like a failure", async () => {
    const { receiver, outbox, counters } = await rig();
    const url = receiver.url;
    await receiver.stop();
    await outbox.append("t:room:x", newEvent("message.published", { n: 1 }));
    await waitFor(() => counters.webhooksRetried.n >= 2, "two retries", 3000);
    expect(counters.webhooksSent.n).toBe(0);
    expect(await outbox.stats()).toMatchObject({ length: 1 });
    expect(url).toStartWith("http://127.0.0.1:");
  });
});

describe("ordering: one key at a time, in order; a failing key holds back only its own events", () => {
  test("later events of a failing topic wait for it; other topics go on; after recovery the topic's events come in order", async () => {
    const { receiver, outbox } = await rig({ backoff: { baseMs: 50, maxMs: 200 } });
    let badFails = true;
    receiver.answer = (e) => (e.data.topic === "room:bad" && badFails ? 500 : 200);
    const append = (topic: string, n: number) => outbox.append(orderingKey.topic(topic), newEvent("message.published", { topic, n }));
    await append("room:bad", 1);
    await append("room:good", 1);
    await append("room:bad", 2);
    for (let n = 2; n <= 5; n++) await append("room:good", n);
    await waitFor(() => receiver.delivered().length === 5, "the good topic's five events", 3000);
    expect(receiver.delivered().map((r) => r.event.data.n)).toEqual([1, 2, 3, 4, 5]);
    expect(receiver.received.filter((r) => r.event.data.topic === "room:bad").map((r) => r.event.data.n)).toEqual(
      receiver.received.filter((r) => r.event.data.topic === "room:bad").map(() => 1),
    );
    badFails = false;
    await waitFor(() => receiver.delivered().length === 7, "the bad topic's two events", 3000);
    expect(receiver.delivered().slice(5).map((r) => [r.event.data.topic, r.event.data.n])).toEqual([["room:bad", 1], ["room:bad", 2]]);
  });

  test("publications of one topic stored out of seq order are sent in seq order (same epoch)", async () => {
    const { receiver, outbox } = await rig();
    const frame = (seq: number, epoch = "e1") => ({ type: "message", topic: "room:p", seq, epoch, from: "u1", data: null, ts: 1 });
    await Promise.all([3, 1, 2].map((seq) => outbox.append("t:room:p", newEvent("message.published", frame(seq)))));
    await waitFor(() => receiver.delivered().length === 3, "three deliveries");
    expect(receiver.delivered().map((r) => r.event.data.seq)).toEqual([1, 2, 3]);
  });

  test("different keys are sent concurrently: a stalled topic does not delay another", async () => {
    const { receiver, outbox } = await rig({ attemptTimeoutMs: 5000 });
    receiver.answer = (e) => (e.data.topic === "room:slow" ? "stall" : 200);
    await outbox.append("t:room:slow", newEvent("message.published", { topic: "room:slow" }));
    await waitFor(() => receiver.received.length === 1, "the stalled request");
    const started = Date.now();
    await outbox.append("t:room:fast", newEvent("message.published", { topic: "room:fast" }));
    await waitFor(() => receiver.delivered().length === 1, "the other topic's event", 2000);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe("WEBHOOK_MAX_AGE_S", () => {
  test("an event still failing at the max age is dropped, counted as failed and logged; its key's next event goes on", async () => {
    const { receiver, outbox, counters, logs } = await rig({ maxAgeS: 1, backoff: { baseMs: 100, maxMs: 200 } });
    receiver.answer = (e) => (e.data.n === 1 ? 500 : 200);
    const doomed = newEvent("message.published", { topic: "room:m", n: 1 });
    await outbox.append("t:room:m", doomed);
    await outbox.append("t:room:m", newEvent("message.published", { topic: "room:m", n: 2 }, Date.now() + 5));
    await waitFor(() => receiver.delivered().length === 1, "the next event", 3000);
    expect(counters.webhooksFailed.n).toBe(1);
    const last1 = receiver.received.filter((r) => r.event.data.n === 1).at(-1)!;
    expect(last1.receivedAt - doomed.at).toBeLessThanOrEqual(1000);
    expect(receiver.delivered()[0]!.receivedAt - doomed.at).toBeGreaterThanOrEqual(800);
    expect(logs.filter((l) => l.level === "warn" && l.msg.includes("dropped"))).toEqual([
      expect.objectContaining({ fields: expect.objectContaining({ event: doomed.id, type: "message.published", maxAgeS: 1 }) }),
    ]);
  });

  test("an event already past the max age when its turn comes is dropped without an attempt", async () => {
    const { receiver, outbox, counters } = await rig({ maxAgeS: 1 });
    await outbox.append("t:room:o", newEvent("message.published", { n: 1 }, Date.now() - 2000));
    await outbox.append("t:room:o", newEvent("message.published", { n: 2 }));
    await waitFor(() => receiver.received.length === 1, "the fresh event");
    expect(receiver.received.map((r) => r.event.data.n)).toEqual([2]);
    expect(counters.webhooksFailed.n).toBe(1);
  });
});

describe("close", () => {
  test("aborts a stalled attempt at once and leaves its event in the outbox", async () => {
    const { receiver, outbox, sender } = await rig({ attemptTimeoutMs: 10_000 });
    receiver.answer = () => "stall";
    await outbox.append("t:room:z", newEvent("message.published", { n: 1 }));
    await waitFor(() => receiver.received.length === 1, "the stalled request");
    const started = Date.now();
    await sender.close();
    expect(Date.now() - started).toBeLessThan(500);
    expect(await outbox.stats()).toMatchObject({ length: 1 });
  });
});
