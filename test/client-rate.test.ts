/**
 * The SDK under the server's per-socket rate limit (SPEC §3 "Limits", RATE_LIMIT_PER_S /
 * RATE_LIMIT_BURST at their defaults): what waited offline — hundreds of publishes, a hundred
 * subscriptions — and a burst issued while open are sent as fast as the limit allows, in the order
 * they were issued, instead of being refused with `rate_limited` past the first hundred frames.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient } from "./support/client.ts";
import { range, recordedClient, waitFor, withCookie } from "./support/sdk.ts";
import { killAllServers, session, startServer, type TestServer } from "./support/server.ts";

let server: TestServer;

beforeAll(async () => {
  server = await startServer(); // RATE_LIMIT_PER_S 50, RATE_LIMIT_BURST 100
}, 20_000);
afterAll(() => {
  server?.kill();
  killAllServers();
});

const outcomes = (results: PromiseSettledResult<unknown>[]) =>
  results.map((r) => (r.status === "fulfilled" ? "ok" : (r.reason as { code: string }).code)).filter((o) => o !== "ok");

describe("SPEC §3 rate limit with the SDK", () => {
  test("250 publishes and 120 subscribes queued offline all succeed after connecting, publishes in issue order", async () => {
    const topic = `room:sdk-rate-${Date.now().toString(36)}`;
    const watcher = await TestClient.connect(server.wsUrl, { cookie: (await session(server, "bob")).cookie });
    await watcher.subscribe(topic);
    const r = recordedClient({ url: server.wsUrl, createWebSocket: withCookie((await session(server, "alice")).cookie), autoConnect: false });
    try {
      const subscribes = range(0, 120).map((i) => r.client.subscribe(`${topic}-${i}`, () => {}));
      const publishes = range(0, 250).map((i) => r.client.publish(topic, i));
      r.client.connect();
      expect(outcomes(await Promise.allSettled(subscribes))).toEqual([]);
      expect(outcomes(await Promise.allSettled(publishes))).toEqual([]);
      const got = await watcher.waitMessages(topic, 250, 10_000);
      expect(got.map((m) => m.data)).toEqual(range(0, 250));
      expect(r.client.state).toBe("open");
      expect(r.count("closed")).toBe(0);
    } finally {
      r.client.close();
      watcher.terminate();
    }
  }, 30_000);

  test("a burst of 200 publishes issued while open is paced, not refused", async () => {
    const topic = `room:sdk-burst-${Date.now().toString(36)}`;
    const r = recordedClient({ url: server.wsUrl, createWebSocket: withCookie((await session(server, "carol")).cookie) });
    try {
      await waitFor(() => r.client.state === "open", 5000, "open");
      const results = await Promise.allSettled(range(0, 200).map((i) => r.client.publish(topic, i)));
      expect(outcomes(results)).toEqual([]);
      expect(results.map((p) => (p as PromiseFulfilledResult<{ seq: number }>).value.seq)).toEqual(range(1, 200));
    } finally {
      r.client.close();
    }
  }, 30_000);
});
