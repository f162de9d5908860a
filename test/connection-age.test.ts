/** MAX_CONNECTION_AGE_S: sockets are retired with 1012 after a jittered age, so clients rebalance. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startServer, session, type TestServer } from "./support/server.ts";
import { TestClient, closeAll } from "./support/client.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ MAX_CONNECTION_AGE_S: "2", MAX_CONNECTIONS_PER_USER: "50" });
});
afterAll(() => server.kill());

describe("maximum connection age", () => {
  test("every socket closes with 1012 between 90 % and 110 % of the age (+ sweep interval), not all at once", async () => {
    const { cookie } = await session(server, "alice");
    const clients = await Promise.all(Array.from({ length: 20 }, () => TestClient.connect(server.wsUrl, { cookie })));
    try {
      const closes = await Promise.all(clients.map((c) => c.waitClose(4000)));
      for (const close of closes) {
        expect(close.code).toBe(1012);
        expect(close.at).toBeGreaterThanOrEqual(1800);
        expect(close.at).toBeLessThanOrEqual(2200 + 250 + 1500); // sweep interval, plus room for a loaded CI machine
      }
      const times = closes.map((c) => c.at).sort((a, b) => a - b);
      expect(times.at(-1)! - times[0]!).toBeGreaterThan(100); // jittered, not one instant
      expect(server.faults()).toEqual([]);
    } finally {
      await closeAll(clients);
    }
  });
});
