import { describe, expect, test } from "bun:test";
import { PasswordGate } from "./password-gate.ts";

/** A verification the test ends by hand; `started` says whether the gate ran it. */
function verification() {
  let end!: () => void;
  const done = new Promise<void>((resolve) => (end = resolve));
  const v = { started: false, end, run: () => ((v.started = true), done) };
  return v;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("PasswordGate", () => {
  test("with two places, a flood from one key runs one verification at a time: another key's login starts at once", async () => {
    const gate = new PasswordGate({ concurrency: 2, queue: 16 });
    const flood = Array.from({ length: 10 }, verification);
    const floodRuns = flood.map((v) => gate.run("10.0.0.1", v.run));
    await turn();
    expect(flood.filter((v) => v.started).length).toBe(1);
    const login = verification();
    const loginRun = gate.run("10.0.0.2", login.run);
    expect(login.started).toBe(true); // no verification of the flood had to end first
    login.end();
    await loginRun;
    for (const [i, v] of flood.entries()) {
      await turn();
      expect(flood.filter((w) => w.started).length).toBe(i + 1);
      v.end();
    }
    await Promise.all(floodRuns);
    expect(gate.load).toBe(0);
  });

  test("two verifications ending in one turn do not hand a key more than concurrency - 1 places", async () => {
    const gate = new PasswordGate({ concurrency: 3, queue: 16 });
    const a = Array.from({ length: 6 }, verification);
    const b = verification();
    const aRuns = a.map((v) => gate.run("a", v.run));
    const bRun = gate.run("b", b.run);
    await turn();
    expect(a.filter((v) => v.started).length).toBe(2);
    expect(b.started).toBe(true);
    // One of a's and b's end together: a gets one place back, never a third at once.
    a[0]!.end();
    b.end();
    await bRun;
    await turn();
    expect(a.filter((v) => v.started).length).toBe(3);
    const running = a.filter((v, i) => v.started && i !== 0).length;
    expect(running).toBe(2);
    for (const v of a) v.end();
    await Promise.all(aRuns);
    expect(gate.load).toBe(0);
  });

  test("one place: the key takes it (nothing to keep free)", async () => {
    const gate = new PasswordGate({ concurrency: 1, queue: 16 });
    const v = verification();
    const run = gate.run("k", v.run);
    expect(v.started).toBe(true);
    v.end();
    await run;
  });
});
