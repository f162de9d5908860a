import { afterAll, beforeAll, expect, test } from "bun:test";
import { createConnection, within } from "./connection.ts";
import { startRedis, type TestRedis } from "../../test/support/redis.ts";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());

/** Keeps the event loop busy for `ms`, as a burst of handshakes or a full collection does. */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {}
}

const outcome = (p: Promise<unknown>) => p.then(() => "answered", (e: Error) => e.message);

test("a reply that arrived while the event loop stalled past the deadline is taken, not timed out", async () => {
  const client = createConnection(redis.url, { name: "switchboard:test:deadline", commandTimeoutMs: 200 });
  try {
    await client.connect();
    await client.set("k", "v");
    for (const ms of [250, 300, 350, 400, 500, 700]) {
      const get = outcome(client.get("k"));
      const wrapped = outcome(within(client.get("k"), 200));
      stall(ms);
      expect([ms, await get, await wrapped]).toEqual([ms, "answered", "answered"]);
    }
  } finally {
    client.disconnect();
  }
});

test("a Redis that does not answer is still refused at the deadline", async () => {
  const client = createConnection(redis.url, { name: "switchboard:test:deadline-stalled", commandTimeoutMs: 200 });
  try {
    await client.connect();
    expect(await redis.command("CLIENT", "PAUSE", "1000", "ALL")).toBe("+OK");
    const started = performance.now();
    const [get, wrapped] = await Promise.all([outcome(client.get("k")), outcome(within(new Promise(() => {}), 200))]);
    const took = performance.now() - started;
    expect([get, wrapped]).toEqual(["Command timed out", "Command timed out"]);
    expect(took).toBeGreaterThanOrEqual(195);
    expect(took).toBeLessThan(600);
  } finally {
    client.disconnect();
  }
});
