/**
 * SPEC §5 `webhook: true`: every publication of such a namespace is also a `message.published`
 * event (SPEC §6), and no other namespace's is. A real server process and a real HTTP receiver.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { apiPublish, killAllServers, session, startServer, type TestServer } from "./support/server.ts";
import { startReceiver, type WebhookReceiver } from "./support/webhook-receiver.ts";
import { waitFor } from "./suites/broker.suite.ts";

const SECRET = "namespaces-webhook-secret-0123456789abcdef";
const NAMESPACES = { orders: { subscribe: "owner", publish: "server", webhook: true }, chat: { subscribe: "any", publish: "any", webhook: true } };

let receiver: WebhookReceiver;
let server: TestServer;
const clients = new Set<TestClient>();

beforeAll(async () => {
  receiver = startReceiver(SECRET);
  server = await startServer({ NAMESPACES: JSON.stringify(NAMESPACES), WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET, WEBHOOK_RETRY_BASE_MS: "100" });
}, 30_000);
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  killAllServers();
  await receiver?.stop();
});

describe("webhook: true", () => {
  test("publications of webhook namespaces are message.published events; room's are not", async () => {
    const c = await TestClient.connect(server.wsUrl, { cookie: (await session(server, "alice")).cookie }, 5000);
    clients.add(c);
    const published = () => receiver.received.filter((r) => r.event.type === "message.published").map((r) => r.event.data as { topic: string; data: unknown; from: string });
    await c.publish("room:plain", "not a webhook");
    await c.publish("chat:1", "hello");
    expect((await apiPublish(server, { topic: "orders:alice", data: { shipped: true } })).status).toBe(202);
    await waitFor(() => published().length >= 2, "two message.published events", 5000);
    await Bun.sleep(300);
    const events = published();
    expect(events.map((e) => e.topic).sort()).toEqual(["chat:1", "orders:alice"]);
    expect(events.find((e) => e.topic === "chat:1")).toMatchObject({ from: "alice", data: "hello" });
    expect(events.find((e) => e.topic === "orders:alice")).toMatchObject({ from: "server", data: { shipped: true } });
  });
});
