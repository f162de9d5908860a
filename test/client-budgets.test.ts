/**
 * The SDK against the real server's budgets (SPEC §8): one subscribe past
 * `MAX_SUBSCRIPTIONS_PER_SOCKET` rejects with `limit_exceeded` like any coded error, and the
 * client goes on. (Against a scripted server: test/client-server-control.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SwitchboardClientError } from "../src/client/index.ts";
import { recordedClient, waitFor, withCookie } from "./support/sdk.ts";
import { killAllServers, session, startServer, type TestServer } from "./support/server.ts";

let server: TestServer;

beforeAll(async () => {
  server = await startServer({ MAX_SUBSCRIPTIONS_PER_SOCKET: "2" });
}, 20_000);
afterAll(() => {
  server?.kill();
  killAllServers();
});

describe("SPEC §8 with the SDK", () => {
  test("a subscribe past MAX_SUBSCRIPTIONS_PER_SOCKET rejects with limit_exceeded; the client stays open", async () => {
    const s = await session(server, "alice");
    const r = recordedClient({ url: server.wsUrl, createWebSocket: withCookie(s.cookie) });
    try {
      await waitFor(() => r.client.state === "open", 5000, "open");
      const base = `room:sdk-budget-${Date.now().toString(36)}`;
      await r.client.subscribe(`${base}-1`, () => {});
      await r.client.subscribe(`${base}-2`, () => {});
      const refused = await r.client.subscribe(`${base}-3`, () => {}).catch((e) => e);
      expect(refused).toBeInstanceOf(SwitchboardClientError);
      expect(refused).toMatchObject({ code: "limit_exceeded", topic: `${base}-3`, temporary: false });
      expect(r.client.topics.sort()).toEqual([`${base}-1`, `${base}-2`]);
      expect(r.client.state).toBe("open");
      await r.client.unsubscribe(`${base}-1`);
      await r.client.subscribe(`${base}-3`, () => {}); // room again under the cap
    } finally {
      r.client.close();
    }
  }, 20_000);
});
