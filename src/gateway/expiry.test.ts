import { describe, expect, test } from "bun:test";
import { noticeAt } from "./expiry.ts";

describe("§4 expiring: a tenth of the lifetime, at least 5 s and at most 60 s", () => {
  const t0 = 1_000_000_000_000;
  test("a tenth of the lifetime before the end", () => {
    expect(noticeAt(t0, t0 + 300_000, t0)).toBe(t0 + 270_000);
  });
  test("never less than 5 s", () => {
    expect(noticeAt(t0, t0 + 20_000, t0)).toBe(t0 + 15_000);
  });
  test("never more than 60 s", () => {
    expect(noticeAt(t0, t0 + 3_600_000, t0)).toBe(t0 + 3_540_000);
  });
  test("a credential already inside its notice window is told at once", () => {
    expect(noticeAt(t0, t0 + 3_600_000, t0 + 3_590_000)).toBe(t0 + 3_590_000);
    expect(noticeAt(t0, t0 + 3_000, t0)).toBe(t0);
  });
  test("an issue time in the future (clock skew) counts from now", () => {
    expect(noticeAt(t0 + 50_000, t0 + 100_000, t0)).toBe(t0 + 90_000);
  });
});
