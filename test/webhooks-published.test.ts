/**
 * message.published (SPEC §6) as the gateway emits it, through DeploymentEvents, a real Webhooks
 * sender and a real receiver. The gateway passes the namespaces' `webhook: true` (SPEC §5) as the
 * predicate; this test passes one of its own. From a running server: test/namespaces-webhook.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createLogger } from "../src/log.ts";
import { Metrics } from "../src/metrics.ts";
import { MemoryPresence } from "../src/presence/memory.ts";
import { DeploymentEvents } from "../src/webhooks/deployment-events.ts";
import { MemoryOutbox } from "../src/webhooks/memory-outbox.ts";
import { Webhooks } from "../src/webhooks/webhooks.ts";
import { startReceiver } from "./support/webhook-receiver.ts";
import { waitFor } from "./suites/broker.suite.ts";

const SECRET = "webhook-secret-0123456789abcdef-0123456789";
const receiver = startReceiver(SECRET);
const outbox = new MemoryOutbox();
const log = createLogger("silent");
const webhooks = new Webhooks({ outbox, url: receiver.url, secret: SECRET, maxAgeS: 60, log, backoff: { baseMs: 50, maxMs: 200 } });
const events = new DeploymentEvents({ webhooks, presence: new MemoryPresence(), log, webhookFor: (topic) => topic.startsWith("orders:") });
await webhooks.start();

afterAll(async () => {
  events.close();
  await webhooks.stop();
  await outbox.close();
  await receiver.stop();
});

const input = (data: unknown) => ({ from: "u-alice", data, ts: 1_767_225_600_000 });

describe("message.published", () => {
  test("a publication on a webhook topic is sent as the message frame; stored before `published` resolves", async () => {
    receiver.answer = () => "stall";
    await events.published("orders:o1", input({ n: 1 }), { seq: 7, epoch: "e1", duplicate: false });
    expect((await outbox.stats()).length).toBe(1);
    await waitFor(() => receiver.received.length === 1, "the attempt");
    expect(receiver.received[0]!.event).toMatchObject({ type: "message.published" });
    expect(receiver.received[0]!.event.data).toEqual({ type: "message", topic: "orders:o1", seq: 7, epoch: "e1", from: "u-alice", data: { n: 1 }, ts: 1_767_225_600_000 });
    expect(receiver.received[0]!.signatureValid).toBe(true);
    receiver.answer = () => 200;
    receiver.release();
    await waitFor(() => receiver.delivered().length === 1, "the delivery", 3000);
  });

  test("nothing for a deduplicated retry, nor for a topic outside webhook namespaces; an ephemeral publication has no seq or epoch", async () => {
    const before = receiver.received.length;
    await events.published("orders:o1", input({ n: 1 }), { seq: 7, epoch: "e1", duplicate: true });
    await events.published("room:r", input({ n: 2 }), { seq: 1, epoch: "e2", duplicate: false });
    await events.published("orders:typing", input({ n: 3 }), null);
    await waitFor(() => receiver.received.length === before + 1, "one more request");
    await Bun.sleep(200);
    expect(receiver.received.slice(before).map((r) => r.event.data)).toEqual([{ type: "message", topic: "orders:typing", from: "u-alice", data: { n: 3 }, ts: 1_767_225_600_000 }]);
  });
});

describe("an event the outbox cannot store", () => {
  test("is counted in switchboard_webhooks_failed_total{reason=outbox} and logged once per 10 s, and emit still resolves", async () => {
    const metrics = new Metrics();
    const lines: string[] = [];
    const logger = { ...log, error: (msg: string, fields?: Record<string, unknown>) => void lines.push(`${msg} ${JSON.stringify(fields)}`) };
    const full = new MemoryOutbox(1);
    const hooks = new Webhooks({ outbox: full, url: receiver.url, secret: SECRET, maxAgeS: 60, log: logger, metrics });
    await hooks.emit("user.online", "u:u1", { user: { id: "u1", name: "one" } }); // stored (not started: never sent)
    await hooks.emit("user.online", "u:u2", { user: { id: "u2", name: "two" } });
    await hooks.emit("user.online", "u:u3", { user: { id: "u3", name: "three" } });
    const text = await metrics.registry.metrics();
    expect(text).toContain('switchboard_webhooks_failed_total{reason="outbox"} 2');
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain("webhook events lost");
    expect(lines[0]).toContain("webhook outbox is full");
    await full.close();
  });
});
