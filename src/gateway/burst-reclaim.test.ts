import { describe, expect, test } from "bun:test";
import { BurstReclaim } from "./burst-reclaim.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A reclaimer on short windows that counts its reclaims. */
function counting(options: { minUpgrades?: number; minIntervalMs?: number } = {}) {
  const calls: number[] = [];
  const reclaim = new BurstReclaim({ minUpgrades: options.minUpgrades ?? 10, quietMs: 40, settledPerS: 20, minIntervalMs: options.minIntervalMs ?? 0, reclaim: () => calls.push(performance.now()) });
  return { reclaim, calls };
}

describe("memory back after a burst of upgrades", () => {
  test("fewer upgrades than the minimum since the last reclaim: nothing is done", async () => {
    const { reclaim, calls } = counting();
    for (let i = 0; i < 9; i++) reclaim.upgraded();
    await sleep(150);
    expect(calls).toEqual([]);
    reclaim.stop();
  });

  test("once the burst has settled, one reclaim; none while upgrades keep arriving fast", async () => {
    const { reclaim, calls } = counting();
    const burstEnd = performance.now() + 200;
    while (performance.now() < burstEnd) {
      for (let i = 0; i < 10; i++) reclaim.upgraded(); // ≥ 500 a second even on a busy machine: a burst
      await sleep(1);
    }
    const settledAt = performance.now();
    expect(calls).toEqual([]);
    await sleep(150);
    expect(calls.length).toBe(1);
    expect(calls[0]!).toBeGreaterThanOrEqual(settledAt);
    reclaim.stop();
  });

  test("at most once per interval, and only after a new burst", async () => {
    const { reclaim, calls } = counting({ minIntervalMs: 300 });
    for (let i = 0; i < 10; i++) reclaim.upgraded();
    await sleep(100);
    expect(calls.length).toBe(1);
    for (let i = 0; i < 10; i++) reclaim.upgraded();
    await sleep(100);
    expect(calls.length).toBe(1); // the interval has not passed
    await sleep(350);
    expect(calls.length).toBe(2);
    await sleep(150);
    expect(calls.length).toBe(2); // no new upgrades since
    reclaim.stop();
  });

  test("not while the process is still busy with the burst (its event loop lags)", async () => {
    let busy = true;
    const calls: number[] = [];
    const reclaim = new BurstReclaim({ minUpgrades: 10, quietMs: 40, minIntervalMs: 0, busy: () => busy, reclaim: () => calls.push(1) });
    for (let i = 0; i < 10; i++) reclaim.upgraded();
    await sleep(150);
    expect(calls).toEqual([]);
    busy = false;
    await sleep(100);
    expect(calls.length).toBe(1);
    reclaim.stop();
  });

  test("stop cancels a pending reclaim", async () => {
    const { reclaim, calls } = counting();
    for (let i = 0; i < 10; i++) reclaim.upgraded();
    reclaim.stop();
    await sleep(150);
    expect(calls).toEqual([]);
  });
});
