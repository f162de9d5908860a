/**
 * The webhook Outbox conformance suite (src/webhooks/outbox.ts), run on MemoryOutbox and
 * RedisOutbox: entries handed out once, in append order per key, kept until done.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Outbox, OutboxEntry } from "../../src/webhooks/outbox.ts";
import { newEvent } from "../../src/webhooks/events.ts";

export type OutboxFactory = () => Outbox | Promise<Outbox>;

/** Takes until `count` entries came (or `timeoutMs` passed). */
export async function takeAll(outbox: Outbox, count: number, timeoutMs = 3000): Promise<OutboxEntry[]> {
  const out: OutboxEntry[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < count && Date.now() < deadline) out.push(...(await outbox.take(count - out.length, 100)));
  return out;
}

export const numbered = (n: number, topic = "room:a", at = Date.now()) => newEvent("message.published", { topic, n }, at);

export function describeOutbox(name: string, factory: OutboxFactory): void {
  describe(`Outbox conformance: ${name}`, () => {
    const open: Outbox[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((o) => o.close()));
    });
    async function start() {
      const outbox = await factory();
      open.push(outbox);
      await outbox.start();
      return outbox;
    }

    test("take hands out appended entries in append order, each once, with the body the event serialized", async () => {
      const outbox = await start();
      const events = [1, 2, 3, 4, 5].map((n) => numbered(n));
      for (const e of events) await outbox.append("t:room:a", e);
      const taken = await takeAll(outbox, 5);
      expect(taken.map((e) => e.event)).toEqual(events);
      expect(taken.map((e) => JSON.parse(e.body))).toEqual(events);
      expect(taken.every((e) => e.key === "t:room:a")).toBe(true);
      expect(await outbox.take(10, 300)).toEqual([]);
    });

    test("take waits for an append and returns soon after it", async () => {
      const outbox = await start();
      const started = Date.now();
      const pending = outbox.take(10, 5000);
      await Bun.sleep(100);
      await outbox.append("t:room:w", numbered(1, "room:w"));
      const taken = await pending;
      const got = taken.length > 0 ? taken : await outbox.take(10, 1000);
      expect(got.map((e) => (e.event.data as { n: number }).n)).toEqual([1]);
      expect(Date.now() - started).toBeLessThan(1500);
    });

    test("many keys: every entry once, and each key's entries in append order", async () => {
      const outbox = await start();
      const appended: string[] = [];
      for (let n = 0; n < 200; n++) {
        const e = numbered(n, `room:k${n % 20}`);
        appended.push(e.id);
        await outbox.append(`t:room:k${n % 20}`, e);
      }
      const taken = await takeAll(outbox, 200);
      expect(new Set(taken.map((e) => e.event.id)).size).toBe(200);
      expect(taken.map((e) => e.event.id).sort()).toEqual(appended.sort());
      for (let k = 0; k < 20; k++) {
        const ns = taken.filter((e) => e.key === `t:room:k${k}`).map((e) => (e.event.data as { n: number }).n);
        expect(ns).toEqual([...ns].sort((a, b) => a - b));
        expect(ns.length).toBe(10);
      }
    });

    test("stats count what is not done; done removes an entry for good", async () => {
      const outbox = await start();
      expect(await outbox.stats()).toEqual({ length: 0, oldestAt: null });
      const t0 = Date.now() - 5000;
      for (let n = 0; n < 3; n++) await outbox.append(`t:room:s${n}`, numbered(n, `room:s${n}`, t0 + n));
      expect(await outbox.stats()).toEqual({ length: 3, oldestAt: t0 });
      const taken = await takeAll(outbox, 3);
      expect(await outbox.stats()).toEqual({ length: 3, oldestAt: t0 });
      const first = taken.find((e) => (e.event.data as { n: number }).n === 0)!;
      await outbox.done(first);
      expect(await outbox.stats()).toEqual({ length: 2, oldestAt: t0 + 1 });
      for (const e of taken) if (e !== first) await outbox.done(e);
      expect(await outbox.stats()).toEqual({ length: 0, oldestAt: null });
      expect(await outbox.take(10, 200)).toEqual([]);
    });

    test("holds is true for taken entries while the outbox runs, false once it is closed; take then gives []", async () => {
      const outbox = await start();
      await outbox.append("t:room:h", numbered(1, "room:h"));
      const [entry] = await takeAll(outbox, 1);
      expect(outbox.holds(entry!)).toBe(true);
      await outbox.close();
      expect(outbox.holds(entry!)).toBe(false);
      expect(await outbox.take(10, 1000)).toEqual([]);
    });
  });
}
