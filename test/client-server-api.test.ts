/**
 * The SDK against the real server API (SPEC §6): `POST /api/subscribe` makes the SDK track the
 * topic (a `subscribed` event, messages as `message` events, resumed with `since` after a 1012);
 * `POST /api/unsubscribe` ends it (not resubscribed); `POST /api/disconnect` closes with 4003 and
 * the SDK stays away. (Frame by frame, against a scripted server: test/client-server-control.test.ts.)
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { ClientEvents, Message } from "../src/client/index.ts";
import { recordedClient, waitFor, withCookie, type Recorder } from "./support/sdk.ts";
import { apiPublish, killAllServers, postJson, session, startServer, TEST_API_KEY, type TestServer } from "./support/server.ts";

let server: TestServer;
const cleanup: (() => unknown)[] = [];

beforeAll(async () => {
  server = await startServer();
}, 20_000);
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
afterAll(() => {
  server?.kill();
  killAllServers();
});

let topicCounter = 0;
const room = () => `room:sdk-api-${Date.now().toString(36)}-${topicCounter++}`;

async function api(path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await postJson(server, path, body, { Authorization: `Bearer ${TEST_API_KEY}` });
  return { status: res.status, body: await res.json() };
}

async function client(user: string): Promise<Recorder & { inbox: Message[] }> {
  const s = await session(server, user);
  const r = recordedClient({ url: server.wsUrl, createWebSocket: withCookie(s.cookie) });
  const inbox: Message[] = [];
  r.client.on("message", (m) => inbox.push(m));
  for (const name of ["subscribed", "unsubscribed", "disconnected"] as const) {
    r.client.on(name, (payload: ClientEvents[typeof name]) => r.events.push({ at: 0, name, payload }));
  }
  cleanup.push(() => r.client.close());
  await waitFor(() => r.client.state === "open", 5000, "open");
  return Object.assign(r, { inbox });
}

describe("SPEC §6 with the SDK", () => {
  test("POST /api/subscribe: subscribed event, messages from that position, tracked and ended by POST /api/unsubscribe", async () => {
    const topic = room();
    const r = await client("alice");
    expect((await apiPublish(server, { topic, data: "before" })).status).toBe(202);
    expect(await api("/api/subscribe", { user: r.client.welcome!.user.id, topic })).toMatchObject({ status: 200, body: { sockets: 1 } });
    await waitFor(() => r.count("subscribed") === 1, 3000, "subscribed");
    expect(r.last("subscribed")).toMatchObject({ topic, seq: 1 });
    expect(r.client.topics).toContain(topic);
    expect((await apiPublish(server, { topic, data: "after" })).status).toBe(202);
    await waitFor(() => r.inbox.some((m) => m.topic === topic), 3000, "the message");
    expect(r.inbox.filter((m) => m.topic === topic).map((m) => [m.seq, m.data])).toEqual([[2, "after"]]);

    expect(await api("/api/unsubscribe", { user: r.client.welcome!.user.id, topic })).toMatchObject({ status: 200, body: { sockets: 1 } });
    await waitFor(() => r.count("unsubscribed") === 1, 3000, "unsubscribed");
    expect(r.last("unsubscribed")).toEqual({ topic, reason: "server" });
    expect(r.client.topics).not.toContain(topic);
    expect((await apiPublish(server, { topic, data: "not for alice" })).status).toBe(202);
    await Bun.sleep(300);
    expect(r.inbox.filter((m) => m.topic === topic).length).toBe(1);
  }, 20_000);

  test("POST /api/disconnect: 4003, a disconnected event, and no reconnect", async () => {
    const r = await client("bob");
    expect(await api("/api/disconnect", { user: r.client.welcome!.user.id })).toMatchObject({ status: 200, body: { sockets: 1 } });
    await waitFor(() => r.count("disconnected") === 1, 3000, "disconnected");
    expect(r.last("closed")).toMatchObject({ code: 4003, reconnect: false });
    expect(r.client.state).toBe("closed");
    await Bun.sleep(500);
    expect(r.count("connecting")).toBe(1);
  }, 20_000);
});
