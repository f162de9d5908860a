import { describe, expect, test } from "bun:test";
import { SlidingWindow } from "./sliding-window.ts";

describe("SlidingWindow", () => {
  test("at most `limit` per key in any window; the oldest event leaving frees one place", () => {
    const w = new SlidingWindow(3, 60_000);
    expect([w.take("a", 0), w.take("a", 10_000), w.take("a", 20_000), w.take("a", 30_000)]).toEqual([true, true, true, false]);
    expect(w.take("b", 30_000)).toBe(true);
    expect(w.retryAfterS("a", 30_000)).toBe(30);
    expect(w.take("a", 59_999)).toBe(false);
    expect(w.take("a", 60_000)).toBe(true); // the event at 0 left the window
    expect(w.count("a", 60_000)).toBe(3);
  });

  test("a key with an empty window is forgotten; record() counts past the limit without growing", () => {
    const w = new SlidingWindow(2, 1000);
    w.record("k", 0);
    w.record("k", 1);
    w.record("k", 2);
    expect(w.count("k", 2)).toBe(2);
    expect(w.take("k", 3)).toBe(false);
    w.sweep(5000);
    expect(w.keys).toBe(0);
  });
});
