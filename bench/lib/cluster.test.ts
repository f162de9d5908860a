/**
 * The benchmark's exact CPU readings (bench/lib/cluster.ts): time on CPU per thread from
 * schedstat, compared thread by thread, and Redis's own INFO commandstats on a real redis-server.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startRedis, type TestRedis } from "../../test/support/redis.ts";
import { onCpuNsBetween, redisCommandStats, threadsOnCpuNs } from "./cluster.ts";

const sumNs = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

describe("time on CPU per thread (schedstat)", () => {
  test("counts what the process burned, as getrusage does, and the main thread alone", () => {
    const a = threadsOnCpuNs(process.pid);
    const u0 = process.cpuUsage();
    let x = 0;
    for (const until = performance.now() + 80; performance.now() < until; ) x += Math.sqrt(x + 1);
    const u1 = process.cpuUsage();
    const b = threadsOnCpuNs(process.pid);
    expect(x).toBeGreaterThan(0);
    const rusageNs = (u1.user - u0.user + u1.system - u0.system) * 1000;
    const all = onCpuNsBetween(process.pid, a, b);
    const main = onCpuNsBetween(process.pid, a, b, true);
    expect(a.has(process.pid)).toBe(true);
    // The same kernel count read two ways, a few reads apart: equal within 10 % and 2 ms.
    expect(Math.abs(all - rusageNs)).toBeLessThan(0.1 * rusageNs + 2e6);
    expect(main).toBeLessThanOrEqual(all);
    expect(main).toBeGreaterThan(0.8 * rusageNs - 2e6);
  });

  test("a thread born between the readings counts from zero, one that ended counts nothing", () => {
    const a = new Map([[10, 1_000], [11, 5_000], [12, 7_000]]);
    const b = new Map([[10, 1_500], [11, 5_200], [13, 300]]); // 12 ended, 13 was born
    expect(onCpuNsBetween(10, a, b)).toBe(500 + 200 + 300);
    expect(onCpuNsBetween(10, a, b, true)).toBe(500);
  });

  test("a process that is gone reads as nothing, and a difference with it as NaN", () => {
    const gone = threadsOnCpuNs(2 ** 22 + 1); // above the kernel's pid_max: never a process
    expect(gone.size).toBe(0);
    expect(onCpuNsBetween(1, gone, threadsOnCpuNs(process.pid))).toBeNaN();
    expect(sumNs(threadsOnCpuNs(process.pid))).toBeGreaterThan(0);
  });
});

describe("Redis's INFO commandstats", () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  test("calls and µs per command, counted between two readings", async () => {
    const before = await redisCommandStats(redis.port);
    for (let i = 0; i < 5; i++) await redis.command("PUBLISH", "bench-test", "x");
    await redis.command("SET", "k", "v");
    const after = await redisCommandStats(redis.port);
    expect(after.publish!.calls - (before.publish?.calls ?? 0)).toBe(5);
    expect(after.set!.calls - (before.set?.calls ?? 0)).toBe(1);
    expect(after.publish!.usec).toBeGreaterThanOrEqual(before.publish?.usec ?? 0);
    // The reading itself is one INFO, seen by the next one.
    expect(after.info!.calls).toBeGreaterThanOrEqual(1);
  });
});
