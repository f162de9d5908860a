import { describe, expect, test } from "bun:test";
import { RejectionRun, SUSTAINED_REJECTION_MS, TokenBucket } from "./rate.ts";

describe("token bucket", () => {
  test("allows a burst, then refills at the rate", () => {
    const rate = { perSecond: 10, burst: 5 };
    const bucket = new TokenBucket(rate, 0);
    for (let i = 0; i < 5; i++) expect(bucket.take(rate, 0)).toBe(true);
    expect(bucket.take(rate, 0)).toBe(false);
    expect(bucket.take(rate, 99)).toBe(false); // 0.99 tokens
    expect(bucket.take(rate, 100)).toBe(true); // 1 token after 100 ms at 10/s
    expect(bucket.take(rate, 100)).toBe(false);
    for (let i = 0; i < 5; i++) expect(bucket.take(rate, 10_000)).toBe(true); // never more than the burst
    expect(bucket.take(rate, 10_000)).toBe(false);
  });
});

describe("sustained rejection closes with 4008", () => {
  test("a run of rejections lasting 2 s closes; accepted frames in between do not restart it", () => {
    const run = new RejectionRun();
    expect(run.reject(0)).toBe(false);
    expect(run.reject(1000)).toBe(false);
    expect(run.reject(1999)).toBe(false);
    expect(run.reject(SUSTAINED_REJECTION_MS)).toBe(true);
  });

  test("2 s without a rejection ends the run", () => {
    const run = new RejectionRun();
    expect(run.reject(0)).toBe(false);
    expect(run.reject(1500)).toBe(false);
    expect(run.reject(3500)).toBe(false); // 2 s quiet: a new run starts here
    expect(run.reject(5000)).toBe(false);
    expect(run.reject(5500)).toBe(true);
  });
});

describe("TokenBucket.charge", () => {
  test("an answer's extra cost puts the bucket in debt (at most -burst) until refilled", () => {
    const rate = { perSecond: 10, burst: 5 };
    const bucket = new TokenBucket(rate, 0);
    expect(bucket.take(rate, 0)).toBe(true);
    bucket.charge(rate, 20, 0); // 4 - 20 → floored at -5
    expect(bucket.take(rate, 0)).toBe(false);
    expect(bucket.take(rate, 500)).toBe(false); // -5 + 5 = 0
    expect(bucket.take(rate, 600)).toBe(true); // 0 + 1
  });
});
