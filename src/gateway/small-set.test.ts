import { describe, expect, test } from "bun:test";
import { SmallSet } from "./small-set.ts";

describe("SmallSet behaves as a Set of strings", () => {
  test("add, has, delete, size and insertion order, below and past the array size", () => {
    for (const n of [0, 1, 3, 8, 9, 30]) {
      const small = new SmallSet();
      const real = new Set<string>();
      for (let i = 0; i < n; i++) {
        small.add(`t${i}`).add(`t${i}`);
        real.add(`t${i}`);
      }
      expect(small.size).toBe(real.size);
      expect([...small]).toEqual([...real]);
      for (let i = 0; i < n; i += 2) expect(small.delete(`t${i}`)).toBe(real.delete(`t${i}`));
      expect(small.delete("missing")).toBe(false);
      expect([...small]).toEqual([...real]);
      for (let i = 0; i < n; i++) expect(small.has(`t${i}`)).toBe(real.has(`t${i}`));
      small.clear();
      expect(small.size).toBe(0);
      expect([...small]).toEqual([]);
    }
  });

  test("deleting while iterating a copy is safe", () => {
    const small = new SmallSet().add("a").add("b").add("c");
    for (const t of [...small]) small.delete(t);
    expect(small.size).toBe(0);
  });
});
