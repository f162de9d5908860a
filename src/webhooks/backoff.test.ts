import { describe, expect, test } from "bun:test";
import { retryDelayMs } from "./backoff.ts";

describe("retryDelayMs: from 1 s doubling to 60 s, ±20 % jitter", () => {
  test("doubles from the base and stops at the cap", () => {
    const mid = () => 0.5; // no jitter
    expect([1, 2, 3, 4, 5, 6, 7, 8, 50].map((f) => retryDelayMs(f, undefined, mid))).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });

  test("jitter spreads each delay over ±20 %, never past the cap", () => {
    expect(retryDelayMs(1, undefined, () => 0)).toBe(800);
    expect(retryDelayMs(1, undefined, () => 0.999999)).toBe(1200);
    expect(retryDelayMs(6, undefined, () => 0.999999)).toBe(38400);
    expect(retryDelayMs(7, undefined, () => 0.999999)).toBe(60000);
    expect(retryDelayMs(7, undefined, () => 0)).toBe(48000);
  });

  test("another base and cap; 0 or negative failures count as the first", () => {
    const opts = { baseMs: 50, maxMs: 300 };
    expect([0, 1, 2, 3, 4].map((f) => retryDelayMs(f, opts, () => 0.5))).toEqual([50, 50, 100, 200, 300]);
  });
});
