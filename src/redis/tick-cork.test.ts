import { afterAll, beforeAll, expect, test } from "bun:test";
import { createConnection } from "./connection.ts";
import { TickCork } from "./tick-cork.ts";
import { startRedis, type TestRedis } from "../../test/support/redis.ts";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());

test("the commands of one turn wait for the turn's end, then leave in call order with their own replies", async () => {
  const client = createConnection(redis.url, { name: "switchboard:test:tick-cork" });
  try {
    await client.connect();
    const cork = new TickCork(client);
    const sent: Promise<unknown>[] = [];
    for (const run of [() => client.set("tick-cork", "1"), () => client.incr("tick-cork"), () => client.get("tick-cork")]) {
      cork.hold();
      sent.push(run());
    }
    expect(client.stream.writableCorked).toBe(1);
    expect(await Promise.all(sent)).toEqual(["OK", 2, "2"]);
    expect(client.stream.writableCorked).toBe(0);

    // The next turn is held again, and released again.
    cork.hold();
    const next = client.incr("tick-cork");
    expect(client.stream.writableCorked).toBe(1);
    expect(await next).toBe(3);
  } finally {
    client.disconnect();
  }
});

test("after a reconnection the new socket is corked, and the old one is not touched again", async () => {
  const client = createConnection(redis.url, { name: "switchboard:test:tick-cork-reconnect" });
  try {
    await client.connect();
    const cork = new TickCork(client);
    const before = client.stream;
    client.disconnect(true);
    await new Promise<void>((resolve) => client.once("ready", () => resolve()));
    expect(client.stream).not.toBe(before);
    cork.hold();
    const reply = client.ping();
    expect(client.stream.writableCorked).toBe(1);
    expect(await reply).toBe("PONG");
  } finally {
    client.disconnect();
  }
});
