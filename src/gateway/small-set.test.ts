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

describe("SmallSet of objects", () => {
  test("one entry, then many, then one again: the same answers as a Set", () => {
    const objs = Array.from({ length: 12 }, (_, i) => ({ i }));
    const small = new SmallSet<{ i: number }>();
    const real = new Set<{ i: number }>();
    for (const o of objs) {
      small.add(o);
      real.add(o);
      expect([...small]).toEqual([...real]);
    }
    for (const o of objs.slice(1)) expect(small.delete(o)).toBe(real.delete(o));
    expect(small.size).toBe(1);
    expect(small.has(objs[0]!)).toBe(true);
    expect(small.has({ i: 0 })).toBe(false);
    expect([...small]).toEqual([objs[0]!]);
    expect(small.delete(objs[0]!)).toBe(true);
    expect(small.size).toBe(0);
  });
});
