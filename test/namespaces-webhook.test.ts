/**
 * SPEC §5 `webhook: true`: every publication of such a namespace is also a `message.published`
 * event (SPEC §6), signed, and no other namespace's is — ordered and ephemeral namespaces alike.
 * And `joinLeave: false` turns off join/leave frames only: the namespace keeps presence, so its
 * presence.join / presence.leave events still go out. A real server process and a real HTTP receiver.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { apiPublish, killAllServers, session, startServer, type TestServer } from "./support/server.ts";
import { startReceiver, type ReceivedWebhook, type WebhookReceiver } from "./support/webhook-receiver.ts";
import { waitFor } from "./suites/broker.suite.ts";

const SECRET = "namespaces-webhook-secret-0123456789abcdef";
const NAMESPACES = {
  orders: { subscribe: "owner", publish: "server", webhook: true },
  chat: { subscribe: "any", publish: "any", webhook: true },
  typing: { subscribe: "any", publish: "any", delivery: "ephemeral", webhook: true },
  lobby: { subscribe: "any", publish: "any", presence: true, joinLeave: false },
};

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

async function connect(user: string): Promise<TestClient> {
  const c = await TestClient.connect(server.wsUrl, { cookie: (await session(server, user)).cookie }, 5000);
  clients.add(c);
  return c;
}

const published = (): ReceivedWebhook[] => receiver.received.filter((r) => r.event.type === "message.published");
const aboutTopic = (topic: string) => published().filter((r) => r.event.data.topic === topic);

describe("webhook: true", () => {
  test("an /api/publish to orders:<user id> arrives as a signed message.published event carrying the message frame", async () => {
    const alice = (await session(server, "alice")).user;
    const topic = `orders:${alice.id}`;
    const answer = await apiPublish(server, { topic, data: { shipped: true } });
    expect(answer.status).toBe(202);
    await waitFor(() => aboutTopic(topic).length === 1, "the message.published event", 5000);
    const [event] = aboutTopic(topic);
    expect(event!.signatureValid).toBe(true);
    expect(event!.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(event!.event).toMatchObject({ type: "message.published", id: expect.stringMatching(/^evt_/), at: expect.any(Number) });
    expect(event!.event.data).toEqual({ type: "message", topic, seq: answer.body.seq, epoch: answer.body.epoch, from: "server", data: { shipped: true }, ts: expect.any(Number) });
  });

  test("publications of webhook namespaces are message.published events; those of a namespace without it are not", async () => {
    const c = await connect("alice");
    const before = published().length;
    await c.publish("room:plain", "not a webhook");
    await c.publish("chat:1", "hello");
    expect((await apiPublish(server, { topic: "room:plain-api", data: "not either" })).status).toBe(202);
    await waitFor(() => published().length >= before + 1, "one message.published event", 5000);
    await Bun.sleep(300);
    const events = published().slice(before).map((r) => r.event.data);
    expect(events.map((e) => e.topic)).toEqual(["chat:1"]);
    expect(events[0]).toMatchObject({ from: "alice", data: "hello", seq: 1 });
  });

  test("an ephemeral webhook namespace's publications are events too, without seq or epoch", async () => {
    const c = await connect("bob");
    const ack = await c.publish("typing:doc-1", { typing: true });
    expect(ack.seq).toBeUndefined();
    await waitFor(() => aboutTopic("typing:doc-1").length === 1, "the ephemeral message.published event", 5000);
    const data = aboutTopic("typing:doc-1")[0]!.event.data;
    expect(data).toMatchObject({ type: "message", topic: "typing:doc-1", data: { typing: true } });
    expect(data.seq).toBeUndefined();
    expect(data.epoch).toBeUndefined();
  });
});

describe("joinLeave: false", () => {
  test("no presence.join frame to subscribers, but the presence.join and presence.leave webhook events", async () => {
    const topic = "lobby:main";
    const [watcher, joiner] = await Promise.all([connect("alice"), connect("carol")]);
    await watcher.subscribe(topic);
    await joiner.subscribe(topic);
    const inTopic = () => receiver.delivered().filter((r) => r.event.data.topic === topic && r.event.type.startsWith("presence."));
    await waitFor(() => inTopic().filter((r) => r.event.data.user.name === "carol").length === 1, "carol's presence.join event", 5000);
    await joiner.request({ type: "unsubscribe", topic });
    await waitFor(() => inTopic().filter((r) => r.event.data.user.name === "carol").length === 2, "carol's presence.leave event", 5000);
    expect(inTopic().filter((r) => r.event.data.user.name === "carol").map((r) => r.event.type)).toEqual(["presence.join", "presence.leave"]);
    expect(watcher.ofType("presence.join")).toEqual([]);
    expect(watcher.ofType("presence.leave")).toEqual([]);
  });
});
