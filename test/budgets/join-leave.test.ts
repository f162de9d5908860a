/**
 * SPEC §8 "Join/leave fan-out on big rooms is bounded": a user who subscribes and unsubscribes a
 * topic in a loop is announced at most once per second per topic, and the announcements still
 * end in the user's real state.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "../support/client.ts";
import { killAllServers, session, startServer, type TestServer } from "../support/server.ts";

let server: TestServer;
const clients = new Set<TestClient>();
beforeAll(async () => {
  server = await startServer({});
});
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  killAllServers();
});

async function connect(user: string): Promise<TestClient> {
  const c = await TestClient.connect(server.wsUrl, { cookie: (await session(server, user)).cookie });
  clients.add(c);
  return c;
}

describe("join/leave toggling is coalesced", () => {
  test("30 subscribe/unsubscribe rounds in ~1.5 s: at most one announcement per second, ending in a leave", async () => {
    const watcher = await connect("alice");
    await watcher.subscribe("room:toggle");
    const toggler = await connect("bob");
    const started = Date.now();
    for (let i = 0; i < 30; i++) {
      await toggler.subscribe("room:toggle");
      await toggler.request({ type: "unsubscribe", topic: "room:toggle" });
      await Bun.sleep(50);
    }
    const elapsed = Date.now() - started;
    await Bun.sleep(1300); // the last held change goes out within a second
    const seen = watcher.frames
      .map((f, i) => ({ f, at: watcher.arrivals[i]! }))
      .filter(({ f }) => (f.type === "presence.join" || f.type === "presence.leave") && f.user?.id === "bob");
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.length).toBeLessThanOrEqual(Math.ceil(elapsed / 1000) + 2);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.at - seen[i - 1]!.at).toBeGreaterThanOrEqual(900);
    expect(seen.at(-1)!.f.type).toBe("presence.leave");
    expect(seen[0]!.f.type).toBe("presence.join");
    // And a plain join a second after the last announcement goes out at once.
    await Bun.sleep(1000);
    const count = watcher.frames.length;
    await toggler.subscribe("room:toggle");
    await watcher.next((f) => f.type === "presence.join" && f.user?.id === "bob" && watcher.frames.indexOf(f) >= count, 500);
  });
});
