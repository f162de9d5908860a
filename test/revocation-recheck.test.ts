/**
 * SPEC §2: a logout closes the session's open sockets on every machine with 4001. A machine whose
 * control link was down when the logout went out never hears it (pub/sub is at most once); when the
 * link is back it asks the store again for every open socket's session. That question can fail too
 * (its Redis round trip is still slow, its read connection not back yet): the socket must still be
 * closed once the store can answer, not left open for good.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient } from "./support/client.ts";
import { startNearAndFar, type NearAndFar } from "./support/cluster.ts";
import { loginSession, postJson, type TestServer } from "./support/server.ts";
import type { LatencyProxy } from "./support/latency-proxy.ts";
import { scrape } from "./support/metrics.ts";

let net: NearAndFar;
let far: LatencyProxy;
let A: TestServer, B: TestServer;

beforeAll(async () => {
  net = await startNearAndFar(5, ["recheck-a", "recheck-b"]);
  ({ far, A, B } = net);
}, 40_000);
afterAll(async () => {
  await net?.stop();
});

const reconnects = async (server: TestServer) => (await scrape(server)).value("switchboard_broker_reconnects_total", {});

describe("a logout B did not hear", () => {
  test("its socket on B closes with 4001 once B's store answers, though B's first recheck after the link came back failed", async () => {
    const { cookie } = await loginSession(A, "alice");
    const onB = await TestClient.connect(B.wsUrl, { cookie });
    const before = await reconnects(B);
    // B's link breaks and comes back slow: 300 ms each way, more than REDIS_COMMAND_TIMEOUT_MS (500)
    // per read, less than the subscriber's 2 s per command (it resubscribes).
    far.setDelay(300);
    far.dropAll();
    expect((await postJson(A, "/auth/logout", {}, { Cookie: cookie, Origin: A.origin })).status).toBe(204);
    // B's control link is back (it missed the logout) and has asked again, in vain.
    const deadline = Date.now() + 15_000;
    while ((await reconnects(B)) <= before) {
      if (Date.now() > deadline) throw new Error("B's link never came back");
      await Bun.sleep(200);
    }
    await Bun.sleep(1500);
    expect(onB.isOpen).toBe(true);
    far.setDelay(5);
    const closed = await onB.waitClose(8000);
    expect(closed.code).toBe(4001);
  }, 60_000);
});
