/**
 * The client SDK (src/client) against real server processes: the promise API, and reconnection
 * treated as the normal case — a publish queued offline or retried after a lost ack is published
 * once, a 4001 stops the client, a silently dead link is noticed within the ping timeout and
 * what was missed meanwhile is recovered with `since`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { SwitchboardClientError, type SwitchboardClient } from "../src/client/index.ts";
import { TestClient } from "./support/client.ts";
import { startProxy, type TcpProxy } from "./support/proxy.ts";
import { FAST, range, recordedClient, waitFor, withCookie } from "./support/sdk.ts";
import { apiPublish, getTicket, getToken, loginSession, session, startServer, type TestServer } from "./support/server.ts";

let server: TestServer;
const cleanup: (() => unknown)[] = [];
let topicCounter = 0;
/** A fresh room per test, so tests never see each other's publications. */
const room = () => `room:sdk-${Date.now().toString(36)}-${topicCounter++}`;

beforeAll(async () => {
  server = await startServer({
    RATE_LIMIT_PER_S: "100000",
    RATE_LIMIT_BURST: "100000",
    MAX_CONNECTIONS_PER_IP: "1000",
    MAX_CONNECTIONS_PER_USER: "1000",
  });
}, 20_000);
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
afterAll(() => server?.kill());

function track<T extends SwitchboardClient | TestClient | TcpProxy>(x: T): T {
  cleanup.push(() => ("terminate" in x ? x.terminate() : x.close()));
  return x;
}

async function aliceVia(url: string, options: Parameters<typeof recordedClient>[0] = {}) {
  const s = await session(server, "alice");
  const r = recordedClient({ url, createWebSocket: withCookie(s.cookie), ...options });
  track(r.client);
  return r;
}

/** A plain socket straight to the server that sees every publication on `topic`. */
async function observer(topic: string): Promise<TestClient> {
  const s = await session(server, "bob");
  const c = track(await TestClient.connect(server.wsUrl, { cookie: s.cookie }));
  await c.subscribe(topic);
  return c;
}

describe("promise API: subscribe, publish, presence", () => {
  test("a round trip by cookie and by token: both subscribers get the publication once, presence lists both", async () => {
    const topic = room();
    const alice = await aliceVia(server.wsUrl);
    const bob = recordedClient({ url: server.wsUrl, getToken: () => getToken(server, "bob") });
    track(bob.client);
    const presence: string[] = [];
    const subA = await alice.client.subscribe(topic, {
      ...alice.handlers(topic),
      onPresence: (e) => presence.push(`${e.type}:${e.user.name}`),
    });
    await bob.client.subscribe(topic, bob.handlers(topic));
    expect(subA.position?.seq).toBe(0);

    const ack = await alice.client.publish(topic, { text: "hello" });
    expect(ack).toMatchObject({ topic, seq: 1, epoch: subA.position!.epoch });
    expect(ack.key).toMatch(/^[0-9a-f]{32}$/);
    await waitFor(() => alice.seqs(topic).length === 1 && bob.seqs(topic).length === 1, 3000, "both copies");
    expect(bob.messages.get(topic)![0]).toMatchObject({ topic, seq: 1, from: "alice", data: { text: "hello" } });
    expect(alice.client.welcome?.user.name).toBe("alice");
    expect(bob.client.welcome?.user.name).toBe("bob");

    const members = await alice.client.presence(topic);
    expect(members.map((m) => m.user.name).sort()).toEqual(["alice", "bob"]);
    await waitFor(() => presence.includes("join:bob"), 3000, "presence.join of bob");

    await bob.client.unsubscribe(topic);
    await alice.client.publish(topic, { text: "after" });
    await waitFor(() => alice.seqs(topic).length === 2, 3000, "second message");
    await Bun.sleep(100);
    expect(bob.seqs(topic)).toEqual([1]);
    expect(alice.seqs(topic)).toEqual([1, 2]);
  }, 15_000);

  test("refusals reject with a typed error carrying the server's code", async () => {
    const alice = await aliceVia(server.wsUrl);
    const forbidden = await alice.client.subscribe("secret:x", () => {}).catch((e) => e);
    expect(forbidden).toBeInstanceOf(SwitchboardClientError);
    expect(forbidden).toMatchObject({ code: "forbidden", topic: "secret:x" });
    expect(await alice.client.subscribe("bad topic!", () => {}).catch((e) => e.code)).toBe("bad_request");
    expect(await alice.client.publish("broadcast:news", 1).catch((e) => e.code)).toBe("forbidden");
    expect(alice.client.topics).toEqual([]);
    const topic = room();
    await alice.client.subscribe(topic, () => {});
    expect(await alice.client.subscribe(topic, () => {}).catch((e) => e.code)).toBe("bad_request");
  }, 15_000);

  test("a subscribe the app cancels itself (React StrictMode's mount/unmount/mount) is no unhandled rejection; awaited, it is `cancelled`", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    cleanup.push(() => process.off("unhandledRejection", onUnhandled));
    const alice = await aliceVia(server.wsUrl);
    const topic = room();
    void alice.client.subscribe(topic, () => {}); // mount: nobody awaits it
    await alice.client.unsubscribe(topic); // unmount
    const awaited = alice.client.subscribe(topic, () => {}); // mount again, awaited this time…
    const cancelledAwaited = alice.client.unsubscribe(topic).then(() => awaited.catch((e) => e.code));
    expect(await cancelledAwaited).toBe("cancelled"); // …still told
    const sub = await alice.client.subscribe(topic, () => {});
    expect(sub.state).toBe("active");
    await Bun.sleep(50);
    expect(unhandled).toEqual([]);
  }, 15_000);

  test("ticket auth asks for a fresh ticket on every attempt", async () => {
    const proxy = track(await startProxy({ upstreams: [server.port] }));
    const s = await session(server, "alice");
    let tickets = 0;
    const r = recordedClient({ url: proxy.url("/ws"), getTicket: () => (tickets++, getTicket(server, s.cookie)) });
    track(r.client);
    const topic = room();
    await r.client.subscribe(topic, r.handlers(topic));
    proxy.dropAll();
    await waitFor(() => r.count("open") === 2, 5000, "reopened");
    expect(tickets).toBe(2);
    await r.client.publish(topic, "x");
    await waitFor(() => r.seqs(topic).length === 1, 3000, "message after reconnect");
  }, 15_000);
});

describe("publishing across reconnects happens exactly once", () => {
  test("a publish issued while disconnected is queued and delivered exactly once after reconnection", async () => {
    const topic = room();
    const proxy = track(await startProxy({ upstreams: [server.port] }));
    const alice = await aliceVia(proxy.url("/ws"));
    await alice.client.subscribe(topic, alice.handlers(topic));
    const watcher = await observer(topic);

    proxy.setUpstreams([]); // every attempt is refused until the upstream comes back
    proxy.dropAll();
    await waitFor(() => alice.client.state !== "open", 2000, "disconnected");
    let settled = false;
    const pending = alice.client.publish(topic, { offline: true }).finally(() => (settled = true));
    await Bun.sleep(400);
    expect(settled).toBe(false);
    expect(watcher.messages.get(topic)).toBeUndefined();
    expect(alice.count("reconnecting")).toBeGreaterThan(1);

    proxy.setUpstreams([server.port]);
    const ack = await pending;
    await watcher.waitMessages(topic, 1);
    await waitFor(() => alice.seqs(topic).length === 1, 3000, "own copy");
    await Bun.sleep(200);
    expect(watcher.messages.get(topic)!.map((m) => m.seq)).toEqual([ack.seq as number]);
    expect(alice.seqs(topic)).toEqual([ack.seq as number]);
  }, 15_000);

  test("a publish whose ack was lost is resent with the same key after the reconnect and not duplicated", async () => {
    const topic = room();
    const proxy = track(await startProxy({ upstreams: [server.port] }));
    const alice = await aliceVia(proxy.url("/ws"));
    await alice.client.subscribe(topic, alice.handlers(topic));
    const watcher = await observer(topic);

    proxy.blackhole("toClient"); // the publish reaches the server; its ack (and pongs) vanish
    const pending = alice.client.publish(topic, { once: true });
    const [published] = await watcher.waitMessages(topic, 1);
    const ack = await pending; // answered on the next connection, to the resent publish
    expect(alice.count("open")).toBe(2);
    expect(alice.events.find((e) => e.name === "closed")?.payload).toMatchObject({ reason: "ping timeout", reconnect: true });
    expect(ack.seq).toBe(published!.seq);
    await waitFor(() => alice.seqs(topic).length === 1, 3000, "own copy via since");
    await Bun.sleep(200);
    expect(watcher.messages.get(topic)!.length).toBe(1);
    expect(alice.seqs(topic)).toEqual([published!.seq]);
    expect(alice.recovered).toEqual([{ topic, recovered: true }]);
  }, 15_000);
});

describe("close codes", () => {
  test("4001 (session revoked by logout) stops reconnecting and emits unauthorized", async () => {
    const s = await loginSession(server, "carol");
    const r = recordedClient({ url: server.wsUrl, createWebSocket: withCookie(s.cookie) });
    track(r.client);
    const topic = room();
    await r.client.subscribe(topic, () => {});
    const res = await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Cookie: s.cookie, Origin: server.origin } });
    expect(res.status).toBe(204);
    await waitFor(() => r.count("unauthorized") === 1, 3000, "unauthorized");
    expect(r.last("unauthorized")).toMatchObject({ code: 4001 });
    expect(r.last("closed")).toMatchObject({ code: 4001, reconnect: false });
    expect(r.client.state).toBe("closed");
    const attempts = r.count("connecting");
    await Bun.sleep(500);
    expect(r.count("connecting")).toBe(attempts);
    expect(await r.client.publish(topic, 1).catch((e) => e.code)).toBe("closed");
  }, 15_000);

  test("a bad first-message token gets 4001: getToken is asked once more (not a blind retry), then unauthorized and no retry", async () => {
    const asked: string[] = [];
    const r = recordedClient({ url: server.wsUrl, getToken: async ({ reason }) => (asked.push(reason), "not-a-token") });
    track(r.client);
    await waitFor(() => r.count("unauthorized") === 1, 3000, "unauthorized");
    expect(asked).toEqual(["connect", "unauthorized"]);
    expect(r.count("connecting")).toBe(2);
    expect(r.count("reconnecting")).toBe(1);
    await Bun.sleep(300);
    expect(r.count("connecting")).toBe(2);
    expect(r.client.state).toBe("closed");
  }, 15_000);

  test("a token socket closed with 4001 at its token's expiry asks getToken again, reconnects and resumes with since", async () => {
    const short = await startServer({ TOKEN_TTL_S: "10" }); // the shortest token the server issues
    cleanup.push(() => short.kill());
    const asked: string[] = [];
    // An app that cannot refresh in-band (where the server sends `expiring`): the socket runs to its expiry.
    const r = recordedClient({
      url: short.wsUrl,
      getToken: async ({ reason }) => {
        asked.push(reason);
        if (reason === "expiring") throw new Error("no refresh in this test");
        return getToken(short, "alice");
      },
    });
    track(r.client);
    const topic = room();
    await r.client.subscribe(topic, r.handlers(topic));
    await apiPublish(short, { topic, data: "before" });
    await waitFor(() => r.count("closed") === 1, 20_000, "the 4001 at the token's expiry");
    expect(r.last("closed")).toMatchObject({ code: 4001, reconnect: true });
    await waitFor(() => r.count("open") === 2, 5000, "reopened");
    expect(asked.filter((reason) => reason !== "expiring")).toEqual(["connect", "unauthorized"]);
    expect(r.count("unauthorized")).toBe(0);
    await apiPublish(short, { topic, data: "after" });
    await waitFor(() => r.seqs(topic).length === 2, 3000, "the message after the reconnect");
    expect(r.messages.get(topic)!.map((m) => m.data)).toEqual(["before", "after"]);
    expect(r.recovered).toEqual([{ topic, recovered: true }]);
  }, 30_000);
});

describe("1009: a frame over MAX_PAYLOAD_BYTES", () => {
  test("the oversized publish fails with too_large instead of being resent on every reconnect; the others are published once", async () => {
    const topic = room();
    const alice = await aliceVia(server.wsUrl);
    await alice.client.subscribe(topic, alice.handlers(topic));
    const before = alice.client.publish(topic, "before");
    const big = alice.client.publish(topic, "x".repeat(70_000)); // MAX_PAYLOAD_BYTES is 65536
    const after = alice.client.publish(topic, "after");
    const refused = await big.catch((e) => e);
    expect(refused).toBeInstanceOf(SwitchboardClientError);
    expect(refused).toMatchObject({ code: "too_large", topic });
    await Promise.all([before, after]);
    await waitFor(() => alice.seqs(topic).length === 2, 3000, "the two small publications");
    await Bun.sleep(500);
    expect(alice.messages.get(topic)!.map((m) => m.data)).toEqual(["before", "after"]);
    expect(alice.events.filter((e) => e.name === "closed").map((e) => (e.payload as { code: number }).code)).toEqual([1009]);
    expect(alice.client.state).toBe("open");
  }, 15_000);
});

describe("a silently dead link", () => {
  test("is noticed within the ping timeout, replaced, and what was missed is recovered exactly once", async () => {
    const topic = room();
    const proxy = track(await startProxy({ upstreams: [server.port] }));
    const alice = await aliceVia(proxy.url("/ws"));
    await alice.client.subscribe(topic, alice.handlers(topic));
    for (let i = 0; i < 3; i++) expect((await apiPublish(server, { topic, data: i })).status).toBe(202);
    await waitFor(() => alice.seqs(topic).length === 3, 3000, "first three");

    const cut = performance.now();
    expect(proxy.blackhole()).toBe(1);
    for (let i = 3; i < 8; i++) expect((await apiPublish(server, { topic, data: i })).status).toBe(202);
    await waitFor(() => alice.count("closed") === 1, 3000, "the dead link noticed");
    const noticedMs = performance.now() - cut;
    const bound = FAST.pingIntervalMs! + FAST.pingTimeoutMs!;
    console.log(`dead link noticed after ${noticedMs.toFixed(0)} ms (bound ${bound} ms)`);
    expect(noticedMs).toBeLessThanOrEqual(bound + 400); // timers may fire late on a loaded machine
    expect(alice.last("closed")).toMatchObject({ code: 1006, reason: "ping timeout", reconnect: true });

    await waitFor(() => alice.seqs(topic).length >= 8, 5000, "the missed five");
    await Bun.sleep(200);
    expect(alice.seqs(topic)).toEqual(range(1, 8));
    expect(alice.messages.get(topic)!.map((m) => m.data)).toEqual(range(0, 8));
    expect(alice.recovered).toEqual([{ topic, recovered: true }]);
    expect(alice.resyncs).toEqual([]);
  }, 15_000);
});
