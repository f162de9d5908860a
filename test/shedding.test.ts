/**
 * Load shedding (docs/protocol.md "Load shedding"): during a storm of upgrades, while the process
 * cannot keep up, new upgrades are closed at once with 1013 and a retry hint, and the sockets
 * already welcomed are not touched. Without Redis "cannot keep up" is the event loop lagging past
 * SHED_LAG_MS: SHED_LAG_MS=1 makes a burst of 1,500 upgrades lag the loop past it for sure;
 * SHED_LAG_MS=0 sheds nobody. With Redis it is how long the oldest queued revocation read has
 * waited (SHED_WAIT_MS): 1 ms sheds part of a burst of 1,500 sessions for sure, and a lagging loop
 * alone (SHED_LAG_MS=1) no longer sheds.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { COOKIE_NAME } from "../src/auth/cookie.ts";
import { newSessionId, SessionSigner } from "../src/auth/sessions.ts";
import { TestClient } from "./support/client.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { loginSession, startServer, TEST_SESSION_SECRET, type TestServer } from "./support/server.ts";

const LOAD = { USERS: "alice:alice-password", MAX_CONNECTIONS_PER_IP: "5000", MAX_CONNECTIONS_PER_USER: "5000" };
let server: TestServer | null = null;
let redis: TestRedis | null = null;
const clients: TestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.close();
  server?.kill();
  server = null;
  await redis?.stop();
  redis = null;
});

/** Opens `n` sockets at once (one cookie each, or the same for all); resolves with how each ended up: welcomed, or closed with a code. */
async function burst(url: string, cookie: string | string[], n: number): Promise<{ welcomed: TestClient[]; closes: { code: number; reason: string }[] }> {
  const opened = Array.from({ length: n }, (_, i) => new TestClient(url, { cookie: typeof cookie === "string" ? cookie : cookie[i]! }));
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

/** `n` sessions of the server's user, each its own (each upgrade's revocation read is its own), signed as `/auth/login` signs them. */
async function ownSessions(server: TestServer, n: number): Promise<string[]> {
  const { user } = await loginSession(server, "alice", "alice-password");
  const signer = new SessionSigner(new TextEncoder().encode(TEST_SESSION_SECRET));
  return Promise.all(Array.from({ length: n }, async () => `${COOKIE_NAME}=${await signer.sign("session", user, newSessionId(), 3600)}`));
}

/** Some upgrades of the burst were shed with 1013 and a 1–3 s hint; the others were welcomed and stay open. */
async function expectPartlyShed({ welcomed, closes }: Awaited<ReturnType<typeof burst>>): Promise<void> {
  expect(closes.length).toBeGreaterThan(0);
  for (const close of closes) {
    expect(close.code).toBe(1013);
    expect(close.reason).toMatch(/^overloaded; retry in \d{4} ms$/);
    expect(Number(/(\d+) ms/.exec(close.reason)![1])).toBeWithin(1000, 3001);
  }
  expect(welcomed.length).toBeGreaterThan(0);
  await Bun.sleep(300);
  expect(welcomed.every((c) => c.isOpen)).toBe(true);
}

describe("load shedding", () => {
  test("a burst past the lag threshold: some upgrades are closed 1013 with a retry hint, the others welcomed and left alone", async () => {
    server = await startServer({ ...LOAD, SHED_LAG_MS: "1" });
    const { cookie } = await loginSession(server, "alice", "alice-password");
    await expectPartlyShed(await burst(server.wsUrl, cookie, 1500));
  }, 60_000);

  test("SHED_LAG_MS=0: the same burst is welcomed whole", async () => {
    server = await startServer({ ...LOAD, SHED_LAG_MS: "0" });
    const { cookie } = await loginSession(server, "alice", "alice-password");
    const { welcomed, closes } = await burst(server.wsUrl, cookie, 1500);
    expect(closes).toEqual([]);
    expect(welcomed.length).toBe(1500);
  }, 60_000);
});

describe("load shedding with Redis: on how long the queued revocation reads wait", () => {
  test("a burst whose reads would wait past SHED_WAIT_MS: some upgrades are closed 1013 with a retry hint, the others welcomed and left alone", async () => {
    redis = await startRedis();
    server = await startServer({ ...LOAD, REDIS_URL: redis.url, SHED_WAIT_MS: "1", SHED_LAG_MS: "0" });
    await expectPartlyShed(await burst(server.wsUrl, await ownSessions(server, 1500), 1500));
  }, 60_000);

  test("a lagging event loop alone sheds nobody while the reads keep up (SHED_LAG_MS=1, SHED_WAIT_MS=60000)", async () => {
    redis = await startRedis();
    server = await startServer({ ...LOAD, REDIS_URL: redis.url, SHED_WAIT_MS: "60000", SHED_LAG_MS: "1" });
    const { welcomed, closes } = await burst(server.wsUrl, await ownSessions(server, 1500), 1500);
    expect(closes).toEqual([]);
    expect(welcomed.length).toBe(1500);
  }, 60_000);

  test("SHED_WAIT_MS=0: the same burst is welcomed whole", async () => {
    redis = await startRedis();
    server = await startServer({ ...LOAD, REDIS_URL: redis.url, SHED_WAIT_MS: "0" });
    const { welcomed, closes } = await burst(server.wsUrl, await ownSessions(server, 1500), 1500);
    expect(closes).toEqual([]);
    expect(welcomed.length).toBe(1500);
  }, 60_000);
});
