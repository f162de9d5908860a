/**
 * The SDK's reconnection policy as pure functions (src/client/backoff.ts): full-jitter backoff
 * and the decision per close code (SPEC "Close codes", the one table in protocol/codes.ts, quoted
 * by docs/protocol.md), plus the seq judgement that drops duplicates and finds gaps
 * (src/client/subscription.ts).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { backoffDelay, classify, closeRule, closeRules, decideReconnect, DEFAULT_RECONNECT, type CloseRule, type ReconnectOptions } from "../src/client/index.ts";

const opts: ReconnectOptions = { baseMs: 500, capMs: 30_000, restartJitterMs: 1000, overloadedMinMs: 5000, stableMs: 10_000 };

describe("backoffDelay: full jitter", () => {
  test("every delay lies in [0, min(cap, base·2^n)] (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, baseMs, extra, r) => {
          const capMs = baseMs + extra;
          const d = backoffDelay(attempt, { baseMs, capMs }, () => r);
          const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
          return Number.isFinite(d) && d >= 0 && d <= ceiling;
        },
      ),
    );
  });

  test("the extremes of the random source reach both ends of the window", () => {
    expect(backoffDelay(0, opts, () => 0)).toBe(0);
    expect(backoffDelay(0, opts, () => 0.999999)).toBe(500);
    expect(backoffDelay(3, opts, () => 0.999999)).toBe(4000);
    expect(backoffDelay(10, opts, () => 0.999999)).toBe(30_000); // capped
    expect(backoffDelay(10_000, opts, () => 0.5)).toBe(15_000); // no overflow for huge attempts
  });

  test("with Math.random the delays spread over the whole window, not a point", () => {
    const ceiling = 4000; // attempt 3
    const samples = Array.from({ length: 4000 }, () => backoffDelay(3, opts));
    const buckets = new Array(10).fill(0);
    for (const d of samples) buckets[Math.min(9, Math.floor((d / ceiling) * 10))]++;
    // Uniform: each tenth holds ~400; allow wide statistical slack but reject clustering.
    for (const count of buckets) expect(count).toBeGreaterThan(250);
    expect(Math.max(...samples)).toBeLessThanOrEqual(ceiling);
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
  });

  test("defaults are base 500 ms, cap 30 s, restart jitter 1 s, overloaded floor 5 s, stable after 10 s", () => {
    expect(DEFAULT_RECONNECT).toEqual(opts);
  });
});

describe("decideReconnect: what each close code makes the client do", () => {
  const opened = (code: number, attempt = 0, r = 0.5) => decideReconnect({ code, opened: true, byClient: false }, attempt, opts, () => r);

  test("the client's own close (1000) stops", () => {
    expect(decideReconnect({ code: 1000, opened: true, byClient: true }, 0, opts)).toEqual({ reconnect: false, stop: "client" });
  });

  test("4001 without a way to get new credentials stops and reports unauthorized, opened or not", () => {
    expect(opened(4001)).toEqual({ reconnect: false, stop: "unauthorized" });
    expect(decideReconnect({ code: 4001, opened: false, byClient: false }, 3, opts)).toEqual({ reconnect: false, stop: "unauthorized" });
    expect(decideReconnect({ code: 4001, opened: true, byClient: false, canReauthenticate: false }, 0, opts)).toEqual({ reconnect: false, stop: "unauthorized" });
  });

  test("4001 with new credentials to fetch (getToken) reconnects at once, then backs off if that fails", () => {
    const reauth = (attempt: number) => decideReconnect({ code: 4001, opened: true, byClient: false, canReauthenticate: true }, attempt, opts, () => 0.5);
    expect(reauth(0)).toEqual({ reconnect: true, delay: 0 });
    expect(reauth(2)).toEqual({ reconnect: true, delay: 1000 });
  });

  test("4003 (disconnected by the server) stops", () => {
    expect(opened(4003)).toEqual({ reconnect: false, stop: "never" });
  });

  test("1012 reconnects within the restart jitter window, or the backoff window once that is wider", () => {
    expect(opened(1012, 0, 0)).toEqual({ reconnect: true, delay: 0 });
    expect(opened(1012, 0, 0.999999)).toEqual({ reconnect: true, delay: 1000 });
    expect(opened(1012, 1, 0.999999)).toEqual({ reconnect: true, delay: 1000 });
    expect(opened(1012, 2, 0.999999)).toEqual({ reconnect: true, delay: 2000 });
  });

  test("4009 and 4002 reconnect at once, then back off if that fails", () => {
    expect(opened(4009, 0, 0.9)).toEqual({ reconnect: true, delay: 0 });
    expect(opened(4002, 0, 0.9)).toEqual({ reconnect: true, delay: 0 });
    expect(opened(4009, 1, 0.5)).toEqual({ reconnect: true, delay: 500 });
  });

  test("1013 and 4008 back off longer: the overloaded floor plus the backoff", () => {
    expect(opened(1013, 0, 0)).toEqual({ reconnect: true, delay: 5000 });
    expect(opened(4008, 1, 0.5)).toEqual({ reconnect: true, delay: 5500 });
  });

  test("protocol misuse (1002, 1003, 1007, 1008) on an opened socket stops: retrying repeats it", () => {
    for (const code of [1002, 1003, 1007, 1008]) expect(opened(code)).toEqual({ reconnect: false, stop: "never" });
  });

  test("a failed upgrade (never opened) always backs off, whatever code the runtime reports", () => {
    for (const code of [1006, 1002, 1008, 1012, 4003]) {
      expect(decideReconnect({ code, opened: false, byClient: false }, 2, opts, () => 0.5)).toEqual({ reconnect: true, delay: 1000 });
    }
  });

  test("anything else (1006, 1001, 1011, 1009, a server's 1000) backs off", () => {
    for (const code of [1006, 1001, 1011, 1009, 1000]) expect(opened(code, 1, 0.5)).toEqual({ reconnect: true, delay: 500 });
  });
});

describe("classify: duplicates are dropped by seq, gaps are found", () => {
  const last = { seq: 10, epoch: "e1" };
  test("the next seq of the same epoch is delivered", () => {
    expect(classify(last, { seq: 11, epoch: "e1" })).toBe("deliver");
  });
  test("an older or equal seq of the same epoch is a duplicate", () => {
    expect(classify(last, { seq: 10, epoch: "e1" })).toBe("duplicate");
    expect(classify(last, { seq: 3, epoch: "e1" })).toBe("duplicate");
  });
  test("a skipped seq, or another epoch, is a gap", () => {
    expect(classify(last, { seq: 12, epoch: "e1" })).toBe("gap");
    expect(classify(last, { seq: 1, epoch: "e2" })).toBe("gap");
  });
});

describe("the one reconnect table (protocol/codes.ts closeRules)", () => {
  /** The docs' wording of each advice. */
  function advice(rule: CloseRule): string {
    switch (rule.reconnect) {
      case "now":
        return rule.spread ? "**at once**, spread over `reconnect.restartJitterMs`; resume with `since`" : "**at once**; resume with `since`";
      case "backoff":
        return rule.slowDown ? "**with backoff**, plus `reconnect.overloadedMinMs`" : "**with backoff**";
      case "reauthenticate":
        return "**re-authenticate first**: the SDK asks `getToken` for a new token; without `getToken` it stops";
      case "never":
        return "**not at all**";
    }
  }

  test("docs/protocol.md quotes every row of it", async () => {
    const docs = await Bun.file(new URL("../docs/protocol.md", import.meta.url)).text();
    const rows = Object.entries(closeRules).map(([code, rule]) => `| ${code} | ${rule.meaning} | ${advice(rule)} |`);
    rows.push(`| other | ${closeRule(1006).meaning} | ${advice(closeRule(1006))} |`);
    for (const row of rows) expect(docs).toContain(`\n${row}\n`);
  });

  test("the SDK does what the table says for every code, on a socket that opened", () => {
    for (const [code, rule] of Object.entries(closeRules)) {
      const decision = decideReconnect({ code: Number(code), opened: true, byClient: false }, 0, opts, () => 0.5);
      if (rule.reconnect === "never") expect(decision).toEqual({ reconnect: false, stop: "never" });
      else if (rule.reconnect === "reauthenticate") expect(decision).toEqual({ reconnect: false, stop: "unauthorized" });
      else if (rule.reconnect === "now") expect(decision).toEqual({ reconnect: true, delay: rule.spread ? 500 : 0 });
      else expect(decision).toEqual({ reconnect: true, delay: 250 + (rule.slowDown ? opts.overloadedMinMs : 0) });
    }
  });

  test("SPEC §6: 4003 is in it and says not at all; a code not in it backs off", () => {
    expect(closeRule(4003).reconnect).toBe("never");
    for (const code of [1005, 1006, 4000, 4999]) expect(closeRule(code).reconnect).toBe("backoff");
  });
});
