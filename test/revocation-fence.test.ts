/**
 * The revocation fence (docs/redis.md): on one Redis a machine reuses a credential's "not revoked"
 * instead of a read per handshake, yet a logout or a user's revocation answered at A is refused at
 * B from the moment it answers. B sits behind a link that adds 30 ms each way, so it hears A's
 * control message ~30 ms after Redis took it — long after a client that waited for the answer has
 * reached B — and only the fence (A answers a window after telling everyone; B trusts what it kept
 * only while its own canaries vouch for everything taken a window ago) keeps it refused.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startNearAndFar, type NearAndFar } from "./support/cluster.ts";
import { loginSession, postJson, TEST_API_KEY, type TestServer } from "./support/server.ts";
import type { LatencyProxy } from "./support/latency-proxy.ts";
import { keptOn, revocationChecks, upgradeCode } from "./support/fence.ts";

const ONE_WAY_MS = 30;

let net: NearAndFar;
let far: LatencyProxy;
let A: TestServer, B: TestServer;

beforeAll(async () => {
  net = await startNearAndFar(ONE_WAY_MS, ["fence-a", "fence-b"]);
  ({ far, A, B } = net);
}, 40_000);
afterAll(async () => {
  await net?.stop();
});

describe("the revocation fence", () => {
  test("B reuses a session's \"not revoked\", and refuses it right after the logout at A answers (4 sessions)", async () => {
    for (let i = 0; i < 4; i++) {
      const { cookie } = await loginSession(A, "alice");
      await keptOn(B, cookie);
      const started = performance.now();
      const res = await postJson(A, "/auth/logout", {}, { Cookie: cookie, Origin: A.origin });
      expect(res.status).toBe(204);
      // The logout answers a window (REVOCATION_FENCE_MS, 250 by default) after telling everyone.
      expect(performance.now() - started).toBeGreaterThanOrEqual(240);
      expect(await upgradeCode(B, cookie)).toBe(401);
    }
  }, 60_000);

  test("upgrades racing a logout: each one sent after the logout answered is refused (6 sessions)", async () => {
    let acceptedDuring = 0;
    for (let i = 0; i < 6; i++) {
      const { cookie } = await loginSession(A, "alice");
      for (let k = 0; k < 3; k++) expect(await upgradeCode(B, cookie)).toBe(101);
      let answeredAt = Infinity;
      const racing: Promise<{ sentAt: number; code: number }>[] = [];
      const loop = (async () => {
        while (performance.now() < answeredAt + 150) {
          const sentAt = performance.now();
          racing.push(upgradeCode(B, cookie).then((code) => ({ sentAt, code })));
          await Bun.sleep(5);
        }
      })();
      await Bun.sleep(10 + i * 7);
      const res = await postJson(A, "/auth/logout", {}, { Cookie: cookie, Origin: A.origin });
      answeredAt = performance.now();
      expect(res.status).toBe(204);
      await loop;
      const outcomes = await Promise.all(racing);
      const late = outcomes.filter((o) => o.sentAt > answeredAt);
      expect(late.length).toBeGreaterThan(0);
      expect(late.filter((o) => o.code !== 401)).toEqual([]);
      acceptedDuring += outcomes.filter((o) => o.code === 101).length;
    }
    // The race was real: B still accepted the session while the logout was on its way.
    expect(acceptedDuring).toBeGreaterThan(0);
  }, 60_000);

  test("a user's revocation at A (`/api/disconnect` with `revoke`) is refused on B at once, though B kept the session", async () => {
    for (const user of ["bob", "carol"]) {
      const { cookie } = await loginSession(A, user);
      await keptOn(B, cookie);
      const res = await postJson(A, "/api/disconnect", { user, revoke: true }, { Authorization: `Bearer ${TEST_API_KEY}` });
      expect(res.status).toBe(200);
      expect(await upgradeCode(B, cookie)).toBe(401);
    }
  }, 60_000);

  test("while B's canaries come back later than the window, B reads every time (and still refuses after a logout)", async () => {
    const { cookie } = await loginSession(A, "alice");
    await keptOn(B, cookie);
    far.setDelay(200);
    try {
      await Bun.sleep(600);
      const before = await revocationChecks(B);
      for (let i = 0; i < 3; i++) expect(await upgradeCode(B, cookie)).toBe(101);
      const after = await revocationChecks(B);
      expect(after.kept - before.kept).toBe(0);
      expect(after.store - before.store).toBeGreaterThanOrEqual(3);
      expect((await postJson(A, "/auth/logout", {}, { Cookie: cookie, Origin: A.origin })).status).toBe(204);
      expect(await upgradeCode(B, cookie)).toBe(401);
    } finally {
      far.setDelay(ONE_WAY_MS);
    }
  }, 60_000);

  test("B's link to Redis breaks around a logout (its control message lost): B forgets what it kept and refuses the session", async () => {
    for (let i = 0; i < 2; i++) {
      const { cookie } = await loginSession(A, "alice");
      await keptOn(B, cookie);
      far.dropAll();
      expect((await postJson(A, "/auth/logout", {}, { Cookie: cookie, Origin: A.origin })).status).toBe(204);
      // B may answer 503 while its connections come back; once it answers, it refuses.
      let answer = await upgradeCode(B, cookie);
      for (let k = 0; answer === 503 && k < 100; k++) {
        await Bun.sleep(50);
        answer = await upgradeCode(B, cookie);
      }
      expect(answer).toBe(401);
    }
    // And B still takes (and again reuses) a session nobody revoked.
    await keptOn(B, (await loginSession(A, "alice")).cookie);
  }, 60_000);
});
