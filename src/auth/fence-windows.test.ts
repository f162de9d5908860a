/**
 * FenceWindows: what a machine trusts and waits for, from the windows every listed machine
 * announces (test/revocation-fence-windows.test.ts holds it across real processes).
 */
import { describe, expect, test } from "bun:test";
import { FenceWindows } from "./fence-windows.ts";
import type { InstanceInfo } from "../protocol/api.ts";

const instance = (id: string, fenceMs?: number): InstanceInfo => ({ id, region: "local", connections: 0, topics: 0, startedAt: 0, draining: false, ...(fenceMs === undefined ? {} : { fenceMs }) });

describe("FenceWindows", () => {
  test("trusts nothing before the registry was read, and waits its own window", () => {
    const windows = new FenceWindows(250, async () => []);
    expect(windows.trustMs).toBe(0);
    expect(windows.waitMs).toBe(250);
  });

  test("trusts the shortest window listed and waits the longest, its own included", async () => {
    let listed = [instance("a", 250), instance("b", 2000)];
    const windows = new FenceWindows(500, async () => listed);
    await windows.refresh();
    expect([windows.trustMs, windows.waitMs]).toEqual([250, 2000]);
    listed = [instance("a", 500)];
    await windows.refresh();
    expect([windows.trustMs, windows.waitMs]).toEqual([500, 500]);
    listed = [];
    await windows.refresh();
    expect([windows.trustMs, windows.waitMs]).toEqual([500, 500]);
  });

  test("a listed machine without a fence (off, a Redis Cluster, an older version) means no trust at all", async () => {
    const windows = new FenceWindows(250, async () => [instance("a", 250), instance("old")]);
    await windows.refresh();
    expect([windows.trustMs, windows.waitMs]).toEqual([0, 250]);
  });

  test("a revoker waits for the first read: before it, this process does not know the others' windows", async () => {
    const windows = new FenceWindows(250, async () => [instance("a", 250), instance("b", 2000)]);
    let waited: number | undefined;
    const wait = windows.revokerWaitMs().then((ms) => (waited = ms));
    await Bun.sleep(20);
    expect(waited).toBeUndefined();
    await windows.refresh();
    await wait;
    expect(waited).toBe(2000);
    // From then on at once, whatever later reads bring.
    expect(await windows.revokerWaitMs(0)).toBe(2000);
  });

  test("no read of the registry within the bound: the revoker answers unavailable (and leaves no timer)", async () => {
    const windows = new FenceWindows(250, async () => {
      throw new Error("redis down");
    });
    await windows.refresh();
    await expect(windows.revokerWaitMs(30)).rejects.toMatchObject({ code: "unavailable" });
  });

  test("a failed read trusts nothing until a read succeeds", async () => {
    let fail = false;
    const windows = new FenceWindows(250, async () => {
      if (fail) throw new Error("redis down");
      return [instance("a", 250)];
    });
    await windows.refresh();
    expect(windows.trustMs).toBe(250);
    fail = true;
    await windows.refresh();
    expect(windows.trustMs).toBe(0);
    fail = false;
    await windows.refresh();
    expect(windows.trustMs).toBe(250);
  });

  test("a failed read is retried soon, not an interval later (a process reads before its Redis connection is writable)", async () => {
    let reads = 0;
    const windows = new FenceWindows(250, async () => {
      if (++reads === 1) throw new Error("Stream isn't writeable and enableOfflineQueue options is false");
      return [instance("a", 250)];
    }, 60_000, 20);
    windows.start();
    await Bun.sleep(100);
    expect([reads, windows.trustMs]).toEqual([2, 250]);
    windows.stop();
  });

  test("start reads at once and every interval; stop leaves no timer", async () => {
    let reads = 0;
    const windows = new FenceWindows(250, async () => (reads++, [instance("a", 250)]), 20);
    windows.start();
    await Bun.sleep(70);
    windows.stop();
    const after = reads;
    expect(after).toBeGreaterThanOrEqual(3);
    await Bun.sleep(50);
    expect(reads).toBe(after);
  });

  test("a heartbeat's live list stands for a read: none of its own while heartbeats bring one; a failed heartbeat reads at once", async () => {
    let reads = 0;
    let fail = false;
    const windows = new FenceWindows(250, async () => {
      reads++;
      if (fail) throw new Error("redis down");
      return [instance("a", 250)];
    }, 20, 1000);
    windows.start();
    await Bun.sleep(5);
    expect(reads).toBe(1); // the first read, at start
    for (let i = 0; i < 6; i++) {
      windows.heard([instance("a", 250), instance("b", 2000)]);
      await Bun.sleep(10);
    }
    expect(reads).toBe(1);
    expect([windows.trustMs, windows.waitMs]).toEqual([250, 2000]);
    fail = true;
    windows.heard(null);
    await Bun.sleep(1);
    expect(reads).toBe(2);
    expect(windows.trustMs).toBe(0);
    windows.stop();
  });
});
