/**
 * The revocation fence when machines' REVOCATION_FENCE_MS differ (auth/fence-windows.ts): A at
 * 250 ms next to Redis, B at 2,000 ms behind a link that adds 400 ms each way. Without the guard
 * B trusted what it kept for 2 s while A answered a logout after 250 ms, and B — which hears A's
 * control message 400 ms after Redis took it — accepted the session after the logout had answered
 * (3 of 3). Now A waits the longest window listed and B trusts the shortest, and a machine without
 * a fence (REVOCATION_FENCE_MS=0, or a version before it) makes every machine read every time.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { upgradeStatus } from "./support/raw-ws.ts";
import { CLUSTER_ENV, inService, startNearAndFar, type NearAndFar } from "./support/cluster.ts";
import { loginSession, postJson, startServer, TEST_API_KEY, type TestServer } from "./support/server.ts";
import type { TestRedis } from "./support/redis.ts";
import { scrape } from "./support/metrics.ts";

let net: NearAndFar;
let redis: TestRedis;
let A: TestServer, B: TestServer;
const extra: TestServer[] = [];

beforeAll(async () => {
  net = await startNearAndFar(400, ["win-a", "win-b"], { B: { REVOCATION_FENCE_MS: "2000", REDIS_COMMAND_TIMEOUT_MS: "2000" } });
  ({ redis, A, B } = net);
  // Each has read the other's window (every second).
  await Bun.sleep(1500);
}, 60_000);
afterAll(async () => {
  for (const server of extra) server.kill();
  await net?.stop();
});

const status = async (server: TestServer, cookie: string) => (await upgradeStatus(server.wsUrl, { Cookie: cookie }, 8000)).status;
const kept = async (server: TestServer) => (await scrape(server)).value("switchboard_revocation_checks_total", { answer: "kept" });

async function logoutAt(server: TestServer, cookie: string): Promise<number> {
  const started = performance.now();
  expect((await postJson(server, "/auth/logout", {}, { Cookie: cookie, Origin: server.origin })).status).toBe(204);
  return performance.now() - started;
}

describe("machines with different revocation fence windows", () => {
  test("a logout answered at A (250 ms) waits B's 2,000 ms, and B refuses the session right after (3 sessions)", async () => {
    for (let i = 0; i < 3; i++) {
      const { cookie } = await loginSession(A, "alice");
      for (let k = 0; k < 3; k++) expect(await status(B, cookie)).toBe(101);
      expect(await logoutAt(A, cookie)).toBeGreaterThanOrEqual(1990);
      expect(await status(B, cookie)).toBe(401);
    }
  }, 60_000);

  test("/api/info shows the SPEC's fields only", async () => {
    const res = await fetch(`${A.url}/api/info`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } });
    const body = (await res.json()) as { instances: Record<string, unknown>[] };
    expect(body.instances.map((i) => Object.keys(i).sort())).toEqual([0, 1].map(() => ["connections", "draining", "id", "region", "startedAt", "topics"]));
  });

  test("while a machine without a fence is listed, A reuses nothing; once it is gone, A does again", async () => {
    const { cookie } = await loginSession(A, "bob");
    const off = await startServer({ ...CLUSTER_ENV, REDIS_URL: redis.url, INSTANCE_ID: "win-off", REVOCATION_FENCE_MS: "0" });
    extra.push(off);
    await inService(off, 20_000);
    await Bun.sleep(1500);
    const before = await kept(A);
    for (let k = 0; k < 5; k++) expect(await status(A, cookie)).toBe(101);
    expect(await kept(A)).toBe(before);
    // A logout there answers at once (no fence): A and B refuse right after.
    const other = await loginSession(A, "carol");
    expect(await status(A, other.cookie)).toBe(101);
    expect((await postJson(off, "/auth/logout", {}, { Cookie: other.cookie, Origin: off.origin })).status).toBe(204);
    expect(await status(A, other.cookie)).toBe(401);
    await off.stop();
    // A clean stop leaves the registry at once; after A's next read it trusts its kept answers again.
    await Bun.sleep(2500);
    for (let k = 0; k < 5; k++) expect(await status(A, cookie)).toBe(101);
    expect(await kept(A)).toBeGreaterThan(before);
  }, 60_000);
});
