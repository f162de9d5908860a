/**
 * Load shedding (docs/protocol.md "Load shedding"): during a storm of upgrades, while the event
 * loop lags past SHED_LAG_MS, new upgrades are closed at once with 1013 and a retry hint, and the
 * sockets already welcomed are not touched. SHED_LAG_MS=1 makes a burst of 1,500 upgrades lag the
 * loop past it for sure; SHED_LAG_MS=0 sheds nobody.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { TestClient } from "./support/client.ts";
import { loginSession, startServer, type TestServer } from "./support/server.ts";

const LOAD = { USERS: "alice:alice-password", MAX_CONNECTIONS_PER_IP: "5000", MAX_CONNECTIONS_PER_USER: "5000" };
let server: TestServer | null = null;
const clients: TestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.close();
  server?.kill();
  server = null;
});

/** Opens `n` sockets at once; resolves with how each ended up: welcomed, or closed with a code. */
async function burst(url: string, cookie: string, n: number): Promise<{ welcomed: TestClient[]; closes: { code: number; reason: string }[] }> {
  const opened = Array.from({ length: n }, () => new TestClient(url, { cookie }));
  clients.push(...opened);
  const outcome = await Promise.all(
    opened.map((c) =>
      c.until(() => (c.frames.some((f) => f.type === "welcome") ? "welcome" : c.close !== null ? "closed" : undefined), 20_000, "welcome or close", true),
    ),
  );
  return {
    welcomed: opened.filter((_, i) => outcome[i] === "welcome"),
    closes: opened.filter((_, i) => outcome[i] === "closed").map((c) => ({ code: c.close!.code, reason: c.close!.reason })),
  };
}

describe("load shedding", () => {
  test("a burst past the lag threshold: some upgrades are closed 1013 with a retry hint, the others welcomed and left alone", async () => {
    server = await startServer({ ...LOAD, SHED_LAG_MS: "1" });
    const { cookie } = await loginSession(server, "alice", "alice-password");
    const { welcomed, closes } = await burst(server.wsUrl, cookie, 1500);
    expect(closes.length).toBeGreaterThan(0);
    for (const close of closes) {
      expect(close.code).toBe(1013);
      expect(close.reason).toMatch(/^overloaded; retry in \d{4} ms$/);
      expect(Number(/(\d+) ms/.exec(close.reason)![1])).toBeWithin(1000, 3001);
    }
    expect(welcomed.length).toBeGreaterThan(0);
    await Bun.sleep(300);
    expect(welcomed.every((c) => c.isOpen)).toBe(true);
  }, 60_000);

  test("SHED_LAG_MS=0: the same burst is welcomed whole", async () => {
    server = await startServer({ ...LOAD, SHED_LAG_MS: "0" });
    const { cookie } = await loginSession(server, "alice", "alice-password");
    const { welcomed, closes } = await burst(server.wsUrl, cookie, 1500);
    expect(closes).toEqual([]);
    expect(welcomed.length).toBe(1500);
  }, 60_000);
});
