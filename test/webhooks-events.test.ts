/**
 * Webhook events from a running server without Redis (SPEC §6): user.online / user.offline at a
 * user's first and last socket, presence.join / presence.leave at a user's first and last socket
 * in a topic with presence — each once, signed, with the data the SPEC gives. A real server process
 * and a real HTTP receiver. (message.published needs a namespace with `webhook: true`: see
 * test/namespaces-webhook.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { killAllServers, session, startServer, type TestServer } from "./support/server.ts";
import { scrape } from "./support/metrics.ts";
import { startReceiver, type ReceivedWebhook, type WebhookReceiver } from "./support/webhook-receiver.ts";
import { waitFor } from "./suites/broker.suite.ts";

const SECRET = "webhook-secret-0123456789abcdef-0123456789";

let receiver: WebhookReceiver;
let server: TestServer;
const clients = new Set<TestClient>();

beforeAll(async () => {
  receiver = startReceiver(SECRET);
  // `big` keeps presence without join/leave frames (SPEC §5 `joinLeave: false`): the app still hears of it.
  const NAMESPACES = JSON.stringify({ big: { subscribe: "any", publish: "any", presence: true, joinLeave: false } });
  server = await startServer({ WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET, WEBHOOK_RETRY_BASE_MS: "100", NAMESPACES });
});
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  killAllServers();
  await receiver?.stop();
});

async function connect(user: string): Promise<TestClient> {
  const { cookie } = await session(server, user);
  const client = await TestClient.connect(server.wsUrl, { cookie }, 5000);
  clients.add(client);
  return client;
}

async function close(client: TestClient): Promise<void> {
  await client.closeAndWait();
  clients.delete(client);
}

/** Delivered events matching, in delivery order, as `type topic-or-user`. */
function seen(filter: (r: ReceivedWebhook) => boolean): string[] {
  return receiver
    .delivered()
    .filter(filter)
    .map((r) => `${r.event.type} ${r.event.data.topic ?? r.event.data.user?.name}`);
}
const aboutUser = (name: string) => (r: ReceivedWebhook) => r.event.data.user?.name === name;

describe("user.online / user.offline", () => {
  test("the first socket of a user brings one user.online, the last one gone one user.offline", async () => {
    const s1 = await connect("alice");
    await waitFor(() => seen(aboutUser("alice")).includes("user.online alice"), "user.online");
    const online = receiver.delivered().find((r) => r.event.type === "user.online")!;
    expect(online.event.data).toEqual({ user: { id: (await session(server, "alice")).user.id, name: "alice" } });
    const s2 = await connect("alice");
    await close(s1);
    await Bun.sleep(300);
    expect(seen(aboutUser("alice"))).toEqual(["user.online alice"]);
    await close(s2);
    await waitFor(() => seen(aboutUser("alice")).length === 2, "user.offline");
    expect(seen(aboutUser("alice"))).toEqual(["user.online alice", "user.offline alice"]);
  });
});

describe("bounded like join/leave frames (SPEC §8)", () => {
  test("a user who connects and disconnects in a loop goes online and offline at most once a second", async () => {
    for (let i = 0; i < 5; i++) await close(await connect("carol"));
    await waitFor(() => seen(aboutUser("carol")).length === 2, "online and offline", 3000);
    await Bun.sleep(1200);
    expect(seen(aboutUser("carol"))).toEqual(["user.online carol", "user.offline carol"]);
  });
});

describe("presence.join / presence.leave", () => {
  test("once per user in a topic with presence, with {topic, user}; none for the inbox (presence off)", async () => {
    const topic = `room:wh${Date.now().toString(36)}`;
    const [a1, a2, b] = await Promise.all([connect("alice"), connect("alice"), connect("bob")]);
    await a1.subscribe(topic);
    await a2.subscribe(topic);
    await b.subscribe(topic);
    const inTopic = (r: ReceivedWebhook) => r.event.data.topic === topic;
    await waitFor(() => seen(inTopic).length === 2, "two joins");
    await a1.request({ type: "unsubscribe", topic });
    await Bun.sleep(300);
    expect(seen(inTopic).sort()).toEqual([`presence.join ${topic}`, `presence.join ${topic}`]);
    await close(a2);
    await b.request({ type: "unsubscribe", topic });
    await waitFor(() => seen(inTopic).length === 4, "two leaves");
    const events = receiver.delivered().filter(inTopic).map((r) => [r.event.type, r.event.data.user.name]);
    expect(events.slice(2)).toEqual([["presence.leave", "alice"], ["presence.leave", "bob"]]);
    expect(receiver.delivered().filter(inTopic)[0]!.event.data).toEqual({ topic, user: expect.objectContaining({ name: expect.any(String) }) });
    expect(receiver.received.some((r) => String(r.event.data.topic ?? "").startsWith("user:"))).toBe(false);
    await closeAll([a1, b]);
  });
});

describe("presence events where the namespace sends no join/leave frames", () => {
  test("joinLeave: false keeps presence: presence.join / presence.leave webhooks still go out, and no frames", async () => {
    const topic = `big:wh${Date.now().toString(36)}`;
    const [a, b] = await Promise.all([connect("alice"), connect("bob")]);
    await a.subscribe(topic);
    await b.subscribe(topic);
    const inTopic = (r: ReceivedWebhook) => r.event.data.topic === topic;
    await waitFor(() => seen(inTopic).length === 2, "two joins", 3000);
    await b.request({ type: "unsubscribe", topic });
    await waitFor(() => seen(inTopic).length === 3, "a leave", 3000);
    expect(seen(inTopic)).toEqual([`presence.join ${topic}`, `presence.join ${topic}`, `presence.leave ${topic}`]);
    expect(a.frames.some((f) => f.type === "presence.join" || f.type === "presence.leave")).toBe(false);
    await closeAll([a, b]);
  });
});

describe("signature and metrics", () => {
  test("every request so far verified with verifySignature and WEBHOOK_SECRET; /metrics counted them as sent", async () => {
    expect(receiver.received.length).toBeGreaterThan(0);
    expect(receiver.received.every((r) => r.signatureValid === true)).toBe(true);
    // Sockets closed at the end of the test before still have events in flight: let them land.
    let metrics = await scrape(server);
    for (let i = 0; i < 40 && (metrics.value("switchboard_webhooks_sent_total") !== receiver.delivered().length || metrics.value("switchboard_webhook_outbox_length") > 0); i++) {
      await Bun.sleep(50);
      metrics = await scrape(server);
    }
    expect(metrics.value("switchboard_webhooks_sent_total")).toBe(receiver.delivered().length);
    expect(metrics.value("switchboard_webhook_outbox_length")).toBe(0);
    expect(server.faults()).toEqual([]);
  });
});

describe("draining without Redis", () => {
  test("the users of a draining process go offline, and the in-process outbox delivers that before the process exits", async () => {
    const before = seen(aboutUser("carol")).length; // carol went online and offline in a test before
    const carol = await connect("carol");
    await waitFor(() => seen(aboutUser("carol")).length === before + 1, "carol online", 3000);
    expect(await server.stop("SIGTERM")).toBe(0);
    clients.delete(carol);
    expect(seen(aboutUser("carol")).slice(before)).toEqual(["user.online carol", "user.offline carol"]);
  });
});
