import { describe, expect, test } from "bun:test";
import { every } from "./shared-clock.ts";

describe("duties on the shared clock", () => {
  test("whole seconds share one wake-up: a 1 s and a 2 s duty run in the same turn; stopped, neither runs again", async () => {
    const runs: { name: string; at: number }[] = [];
    const stopA = every(1000, () => runs.push({ name: "a", at: performance.now() }));
    await Bun.sleep(300); // added later, still on the same timer
    const stopB = every(2000, () => runs.push({ name: "b", at: performance.now() }));
    await Bun.sleep(2600);
    stopA();
    stopB();
    const a = runs.filter((r) => r.name === "a");
    const b = runs.filter((r) => r.name === "b");
    expect(a.length).toBe(2);
    expect(b.length).toBe(1);
    expect(a.some((r) => Math.abs(r.at - b[0]!.at) < 1)).toBe(true);
    const count = runs.length;
    await Bun.sleep(1100);
    expect(runs.length).toBe(count);
  }, 10_000);

  test("other periods get a timer per period; each duty runs at its own", async () => {
    const seen: string[] = [];
    const stops = [every(30, () => seen.push("x")), every(30, () => seen.push("z")), every(45, () => seen.push("y"))];
    await Bun.sleep(100);
    for (const stop of stops) stop();
    const count = (name: string) => seen.filter((s) => s === name).length;
    expect(count("x")).toBeGreaterThanOrEqual(2);
    expect(count("z")).toBe(count("x"));
    expect(count("y")).toBeGreaterThanOrEqual(1);
  });
});
