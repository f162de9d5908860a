import { afterAll, beforeAll, expect, test } from "bun:test";
import type Redis from "ioredis";
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

/** A connected client with a 200 ms command timeout for `run`; Redis unpaused and the client gone after it. */
async function withClient(name: string, run: (client: Redis) => Promise<void>): Promise<void> {
  const client = createConnection(redis.url, { name: `switchboard:test:${name}`, commandTimeoutMs: 200 });
  try {
    await client.connect();
    await run(client);
  } finally {
    await redis.command("CLIENT", "UNPAUSE");
    client.disconnect();
  }
}

test("a reply that arrived while the event loop stalled past the deadline is taken, not timed out", () =>
  withClient("deadline", async (client) => {
    await client.set("k", "v");
    for (const ms of [250, 300, 350, 400, 500, 700]) {
      const get = outcome(client.get("k"));
      const wrapped = outcome(within(client.get("k"), 200));
      stall(ms);
      expect([ms, await get, await wrapped]).toEqual([ms, "answered", "answered"]);
    }
  }));

test("a command that waited behind a stall of this process gets that time back, at most the timeout", () =>
  withClient("deadline-late", async (client) => {
    // Redis answers 450 ms after the call; this process is stalled for the first 400 of them, so
    // its 200 ms timer fires 200 ms late and the command is given those 200 ms back (until 600).
    expect(await redis.command("CLIENT", "PAUSE", "450", "ALL")).toBe("+OK");
    const get = outcome(client.get("k"));
    const wrapped = outcome(within(client.get("k"), 200));
    stall(400);
    expect([await get, await wrapped]).toEqual(["answered", "answered"]);

    // Twice the timeout at most: a Redis that stays silent is refused by then, stall or not.
    expect(await redis.command("CLIENT", "PAUSE", "1500", "ALL")).toBe("+OK");
    const started = performance.now();
    const late = outcome(client.get("k"));
    stall(400);
    expect(await late).toBe("Command timed out");
    expect(performance.now() - started).toBeLessThan(700);
  }));

test("a Redis that does not answer is still refused at the deadline", () =>
  withClient("deadline-stalled", async (client) => {
    expect(await redis.command("CLIENT", "PAUSE", "1000", "ALL")).toBe("+OK");
    const started = performance.now();
    const [get, wrapped] = await Promise.all([outcome(client.get("k")), outcome(within(new Promise(() => {}), 200))]);
    const took = performance.now() - started;
    expect([get, wrapped]).toEqual(["Command timed out", "Command timed out"]);
    expect(took).toBeGreaterThanOrEqual(195);
    expect(took).toBeLessThan(600);
  }));
