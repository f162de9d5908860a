import { afterAll, beforeAll, expect, test } from "bun:test";
import diagnostics from "node:diagnostics_channel";
import { createConnection } from "./connection.ts";
import { startRedis, type TestRedis } from "../../test/support/redis.ts";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());

test("ioredis traces a command only while somebody listens", async () => {
  const channel = diagnostics.tracingChannel("ioredis:command");
  expect(channel.hasSubscribers).toBe(false);

  const client = createConnection(redis.url, { name: "switchboard:test:tracing" });
  try {
    await client.connect();
    const seen: string[] = [];
    const start = (context: unknown) => seen.push((context as { command: string }).command);
    await client.ping();
    expect(seen).toEqual([]);

    diagnostics.subscribe("tracing:ioredis:command:start", start);
    expect(channel.hasSubscribers).toBe(true);
    await client.set("traced", "1");
    expect(seen).toContain("set");

    diagnostics.unsubscribe("tracing:ioredis:command:start", start);
    expect(channel.hasSubscribers).toBe(false);
    seen.length = 0;
    await client.get("traced");
    expect(seen).toEqual([]);
  } finally {
    client.disconnect();
  }
});
