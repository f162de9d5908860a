/** What only the embedded broker has: the history budget over all topics (HISTORY_MAX_BYTES). */
import { describe, expect, test } from "bun:test";
import { MemoryBroker } from "./memory.ts";

const data = "x".repeat(1000);

describe("history budget", () => {
  test("the history of all topics together stays within the budget", async () => {
    const broker = new MemoryBroker({ historySize: 100, historyTtlS: 300, historyMaxBytes: 50_000 });
    for (let i = 0; i < 500; i++) await broker.publish(`room:t${i}`, { from: "u", data, ts: 0 });
    expect(broker.historyBytes).toBeLessThanOrEqual(50_000);
    expect(broker.historyBytes).toBeGreaterThan(40_000);
    await broker.close();
  });

  test("the least recently published topic goes first, and its loss is visible: a new epoch, recovered:false", async () => {
    // A topic with one 1 KB message counts ≈ 1.64 KB (bookkeeping, record, frame); room:kept ≈ 7.6 KB.
    const broker = new MemoryBroker({ historySize: 100, historyTtlS: 300, historyMaxBytes: 25_000 });
    const first = await broker.publish("room:old", { from: "u", data, ts: 0 });
    const kept = await broker.publish("room:kept", { from: "u", data, ts: 0 });
    for (let i = 0; i < 5; i++) await broker.publish("room:kept", { from: "u", data, ts: 0 });
    for (let i = 0; i < 10; i++) await broker.publish(`room:new${i}`, { from: "u", data, ts: 0 });

    const old = await broker.history("room:old", { seq: 0, epoch: first.epoch });
    expect(old.recovered).toBe(false);
    expect(old.position.epoch).not.toBe(first.epoch);
    const again = await broker.publish("room:old", { from: "u", data, ts: 0 });
    expect(again.seq).toBe(1);
    expect(again.epoch).not.toBe(first.epoch);

    // That publication went over the budget again: the next least recently published topic,
    // room:kept, made room; the newer ones stay.
    const keptHistory = await broker.history("room:kept", { seq: 0, epoch: kept.epoch });
    expect(keptHistory.recovered).toBe(false);
    for (let i = 0; i < 10; i++) expect((await broker.history(`room:new${i}`)).position.seq).toBe(1);
    await broker.close();
  });

  test("a topic that keeps being published stays: publishing moves it to the back of the line", async () => {
    const broker = new MemoryBroker({ historySize: 5, historyTtlS: 300, historyMaxBytes: 30_000 });
    const hot = await broker.publish("room:hot", { from: "u", data, ts: 0 });
    for (let i = 0; i < 40; i++) {
      await broker.publish(`room:cold${i}`, { from: "u", data, ts: 0 });
      await broker.publish("room:hot", { from: "u", data, ts: 0 });
    }
    const history = await broker.history("room:hot", { seq: 36, epoch: hot.epoch });
    expect(history.recovered).toBe(true);
    expect(history.publications.map((p) => p.seq)).toEqual([37, 38, 39, 40, 41]);
    await broker.close();
  });

  test("trimming, key expiry and topic expiry give their bytes back", async () => {
    let now = 0;
    const broker = new MemoryBroker({ historySize: 2, historyTtlS: 10, historyMaxBytes: 1_000_000, now: () => now });
    for (let i = 0; i < 10; i++) await broker.publish("room:a", { from: "u", data, ts: 0 });
    const two = broker.historyBytes; // the topic's bookkeeping and two messages of ≈ 1.1 KB
    expect(two).toBeGreaterThan(2600);
    expect(two).toBeLessThan(3000);
    await broker.publish("room:a", { from: "u", data, ts: 0, key: "k1" });
    expect(broker.historyBytes).toBeGreaterThan(two + 200); // the key counts
    now += 11_000;
    await broker.history("room:a"); // finds it expired: forgotten, and made again empty by the read
    expect(broker.historyBytes).toBeGreaterThan(0); // a subscribe-only topic costs its bookkeeping
    expect(broker.historyBytes).toBeLessThan(600);
    await broker.close();
  });
});
