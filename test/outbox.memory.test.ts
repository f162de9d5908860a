/** MemoryOutbox: the shared Outbox suite. */
import { MemoryOutbox } from "../src/webhooks/memory-outbox.ts";
import { describe, expect, test } from "bun:test";
import { describeOutbox, numbered } from "./suites/outbox.suite.ts";

describeOutbox("MemoryOutbox", () => new MemoryOutbox());

describe("MemoryOutbox bound", () => {
  test("past maxEntries waiting, append refuses; done makes room again", async () => {
    const outbox = new MemoryOutbox(3);
    await outbox.start();
    for (let n = 0; n < 3; n++) await outbox.append("t:room:b", numbered(n, "room:b"));
    await expect(outbox.append("t:room:b", numbered(3, "room:b"))).rejects.toThrow("webhook outbox is full (3 events waiting)");
    const [first] = await outbox.take(1, 0);
    await outbox.done(first!);
    await outbox.append("t:room:b", numbered(4, "room:b"));
    expect((await outbox.stats()).length).toBe(3);
    await outbox.close();
  });
});
