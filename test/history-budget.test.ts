/**
 * HISTORY_MAX_BYTES (embedded broker): traffic to many topics cannot grow history without bound,
 * and a topic pushed out of the budget is a visible loss — its subscriber gets `resync` before
 * the new epoch's first message, and a `since` into the old epoch answers `recovered:false`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { apiPublish, session, startServer, type TestServer } from "./support/server.ts";
import { TestClient } from "./support/client.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ HISTORY_MAX_BYTES: "65536" });
});
afterAll(() => server.kill());

describe("history budget over all topics", () => {
  test("a subscribed topic pushed out of the budget resyncs, then goes on in a new epoch", async () => {
    const { cookie } = await session(server, "alice");
    const alice = await TestClient.connect(server.wsUrl, { cookie });
    try {
      await alice.subscribe("room:watched");
      const first = await apiPublish(server, { topic: "room:watched", data: "before" });
      expect(first.status).toBe(202);
      await alice.waitMessages("room:watched", 1);

      const filler = "y".repeat(4000);
      for (let i = 0; i < 40; i++) expect((await apiPublish(server, { topic: `room:filler${i}`, data: filler })).status).toBe(202);

      const after = await apiPublish(server, { topic: "room:watched", data: "after" });
      expect(after.body.seq).toBe(1);
      expect(after.body.epoch).not.toBe(first.body.epoch);
      const resync = await alice.next((f) => f.type === "resync" && f.topic === "room:watched");
      const message = await alice.next((f) => f.type === "message" && f.data === "after");
      expect(alice.frames.indexOf(resync)).toBeLessThan(alice.frames.indexOf(message));
      expect(resync.epoch).toBe(after.body.epoch);
      expect(message).toMatchObject({ seq: 1, epoch: after.body.epoch });

      const late = await TestClient.connect(server.wsUrl, { cookie });
      const ack = await late.subscribe("room:watched", { seq: 1, epoch: first.body.epoch });
      expect(ack.recovered).toBe(false);
      late.ws.close();
      expect(server.faults()).toEqual([]);
    } finally {
      alice.ws.close();
    }
  });
});
