/**
 * SPEC §2 logout: "the session revoked everywhere". Each process keeps a view of revoked
 * sessions (auth/revocation-view.ts), kept current by the control channel. These tests hold it to
 * the SPEC: a session that was just accepted on B is refused on B as soon as the logout at A has
 * answered (a "not revoked" cache would fail here), and when B's link to Redis broke around the
 * logout (its control message lost) B still refuses it and closes B's open socket of it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient } from "./support/client.ts";
import { upgradeStatus } from "./support/raw-ws.ts";
import { loginSession, postJson, type TestServer } from "./support/server.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { scrape } from "./support/metrics.ts";

let cluster: TestCluster;
let A: TestServer, B: TestServer;

beforeAll(async () => {
  cluster = await startCluster(["rv-a", "rv-b"], { USERS: "alice:alice-password" });
  [A, B] = cluster.nodes as [TestServer, TestServer];
}, 30_000);
afterAll(async () => {
  await cluster?.stop();
});

const status = async (server: TestServer, cookie: string) => (await upgradeStatus(server.wsUrl, { Cookie: cookie })).status;

async function logout(cookie: string): Promise<void> {
  const res = await postJson(A, "/auth/logout", {}, { Cookie: cookie, Origin: A.origin });
  expect(res.status).toBe(204);
}

describe("a revoked session is refused on every machine", () => {
  test("accepted on B a moment ago, refused on B right after the logout at A answers (10 sessions)", async () => {
    const before = await scrape(B);
    for (let i = 0; i < 10; i++) {
      const { cookie } = await loginSession(A, "alice", "alice-password");
      for (let k = 0; k < 3; k++) expect(await status(B, cookie)).toBe(101);
      await logout(cookie);
      expect(await status(B, cookie)).toBe(401);
      expect(await status(A, cookie)).toBe(401);
    }
    const after = await scrape(B);
    // B heard every logout on the control channel: its refusals came from its own view.
    expect(after.delta(before, "switchboard_revocation_checks_total", { answer: "local" })).toBe(10);
  }, 30_000);

  test("B's Redis connections are cut around the logout: still refused on B, and B's open socket of that session closes with 4001", async () => {
    for (let i = 0; i < 6; i++) {
      const { cookie } = await loginSession(A, "alice", "alice-password");
      const open = await TestClient.connect(B.wsUrl, { cookie }, 5000);
      // Cut every subscriber connection (B's control channel among them), then log out at once:
      // the control message may be lost.
      await cluster.redis.command("CLIENT", "KILL", "TYPE", "pubsub");
      if (i % 2 === 1) await Bun.sleep(20);
      await logout(cookie);
      expect(await status(B, cookie)).toBe(401);
      // The socket that was open on B when the control message was lost closes once B is back.
      expect((await open.waitClose(5000)).code).toBe(4001);
    }
    // And B still takes sessions that were not revoked.
    const fresh = await loginSession(A, "alice", "alice-password");
    expect(await status(B, fresh.cookie)).toBe(101);
  }, 60_000);
});
