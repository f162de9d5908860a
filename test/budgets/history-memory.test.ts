/**
 * SPEC §8 "Memory budgets count what is really held": HISTORY_MAX_BYTES (embedded broker) counts
 * each topic's real cost — its messages, its bookkeeping, its idempotency keys, and topics that
 * were only subscribed to. Filling the budget with keys or with subscribe-only topics pushes the
 * least recently published topic out, visibly: its subscriber gets `resync` before the new
 * epoch's first message.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "../support/client.ts";
import { apiPublish, killAllServers, session, startServer, type TestServer } from "../support/server.ts";

let server: TestServer;
const clients = new Set<TestClient>();
beforeAll(async () => {
  // HISTORY_SIZE=1: messages cannot fill 64 KB here; only keys and bookkeeping can.
  server = await startServer({ HISTORY_MAX_BYTES: "65536", HISTORY_SIZE: "1", RATE_LIMIT_PER_S: "100000", RATE_LIMIT_BURST: "100000" });
});
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  killAllServers();
});

async function watch(topic: string): Promise<{ watcher: TestClient; epoch: string }> {
  const watcher = await TestClient.connect(server.wsUrl, { cookie: (await session(server, "alice")).cookie });
  clients.add(watcher);
  await watcher.subscribe(topic);
  const first = await apiPublish(server, { topic, data: "before" });
  await watcher.waitMessages(topic, 1);
  return { watcher, epoch: first.body.epoch };
}

async function expectPushedOut(watcher: TestClient, topic: string, epoch: string): Promise<void> {
  const after = await apiPublish(server, { topic, data: "after" });
  expect(after.body.epoch).not.toBe(epoch);
  expect(after.body.seq).toBe(1);
  const resync = await watcher.next((f) => f.type === "resync" && f.topic === topic);
  const message = await watcher.next((f) => f.type === "message" && f.data === "after");
  expect(watcher.frames.indexOf(resync)).toBeLessThan(watcher.frames.indexOf(message));
}

describe("HISTORY_MAX_BYTES counts what is really held", () => {
  test("idempotency keys count: 600 keyed publications on one topic push the oldest topic out", async () => {
    const { watcher, epoch } = await watch("room:keys-watched");
    for (let i = 0; i < 600; i += 50) {
      const batch = Array.from({ length: 50 }, (_, j) => apiPublish(server, { topic: "room:keyed", data: i + j, key: `k-${i + j}-${"x".repeat(40)}` }));
      for (const r of await Promise.all(batch)) expect(r.status).toBe(202);
    }
    await expectPushedOut(watcher, "room:keys-watched", epoch);
  });

  test("subscribe-only topics count: 400 subscribe/unsubscribe rounds push the oldest topic out", async () => {
    const { watcher, epoch } = await watch("room:subs-watched");
    const toucher = await TestClient.connect(server.wsUrl, { cookie: (await session(server, "bob")).cookie });
    clients.add(toucher);
    for (let i = 0; i < 400; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => toucher.subscribe(`room:touch-${i + j}`)));
      await Promise.all(Array.from({ length: 50 }, (_, j) => toucher.request({ type: "unsubscribe", topic: `room:touch-${i + j}` })));
    }
    await expectPushedOut(watcher, "room:subs-watched", epoch);
    expect(server.faults()).toEqual([]);
  });
});
