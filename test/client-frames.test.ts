/**
 * The SDK's frame-level contract, driven by a scripted server: a real WebSocket server
 * (test/support/scripted-server.ts) that sends exactly the frames a test chooses. A correct
 * server never sends a gap, a duplicate or a stray epoch, so the real server cannot show how the
 * client copes with them. Everything a real server can do is tested against real processes in
 * client*.test.ts.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createClient, type ClientOptions, type Message, type ResyncInfo, type SwitchboardClient } from "../src/client/index.ts";
import { resolveUrl } from "../src/client/options.ts";
import { scriptedServer, type Frame, type Peer, type Script, type ScriptedServer } from "./support/scripted-server.ts";
import { waitFor } from "./support/sdk.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function serve(script: Script = {}): ScriptedServer {
  const s = scriptedServer(script);
  cleanup.push(() => s.stop());
  return s;
}

function connect(server: ScriptedServer, options: Partial<ClientOptions> = {}): SwitchboardClient {
  const client = createClient({ url: server.url, network: null, pingIntervalMs: 60_000, random: () => 0, ...options });
  cleanup.push(() => client.close());
  return client;
}

async function open(options: Partial<ClientOptions> = {}, script: Script = {}) {
  const server = serve(script);
  const client = connect(server, options);
  await waitFor(() => client.state === "open", 3000, "open");
  return { client, server, peer: server.peers[0]! };
}

function recorder() {
  const got: Message[] = [];
  const resyncs: ResyncInfo[] = [];
  const recovered: boolean[] = [];
  return {
    got,
    resyncs,
    recovered,
    seqs: () => got.map((m) => m.seq),
    handlers: { onMessage: (m: Message) => got.push(m), onResync: (i: ResyncInfo) => resyncs.push(i), onRecovered: (r: boolean) => recovered.push(r) },
  };
}

const msg = (seq: number, epoch = "e1", topic = "room:a") => ({ type: "message", topic, seq, epoch, from: "bob", data: seq, ts: 1 });
const frames = (peer: Peer, type: string) => peer.frames.filter((f) => f.type === type);

/** Subscribes to room:a, acknowledged at `seq` in `epoch`. */
async function subscribed(client: SwitchboardClient, server: ScriptedServer, seq = 5, epoch = "e1") {
  server.positions.set("room:a", { seq, epoch });
  const r = recorder();
  const sub = await client.subscribe("room:a", r.handlers);
  const frame = frames(server.peers.at(-1)!, "subscribe").at(-1)!;
  expect(frame).toEqual({ type: "subscribe", topic: "room:a", ref: frame.ref });
  expect(sub.position).toEqual({ seq, epoch });
  return { r, sub };
}

/** Holds every `subscribe` with `since` (the test answers it) and every frame of the given types. */
function holding(held: Frame[], types: string[] = []): Script {
  return {
    onFrame(_peer, f) {
      if ((f.type === "subscribe" && f.since) || types.includes(f.type)) return held.push(f), true;
    },
  };
}

describe("positions: duplicates dropped, gaps repaired, resync surfaced", () => {
  test("duplicates by seq are dropped; a gap is repaired by unsubscribe + subscribe since the last delivered", async () => {
    const held: Frame[] = [];
    const { client, server, peer } = await open({}, holding(held));
    const { r } = await subscribed(client, server);
    for (const seq of [6, 7, 7, 6]) peer.send(msg(seq));
    await waitFor(() => r.got.length === 2, 2000, "6 and 7");

    peer.send(msg(9)); // 8 is missing
    await waitFor(() => held.length === 1, 2000, "the repairing subscribe");
    expect(peer.frames.slice(-2).map((f) => f.type)).toEqual(["unsubscribe", "subscribe"]);
    expect(held[0]).toMatchObject({ topic: "room:a", since: { seq: 7, epoch: "e1" } });
    peer.send(msg(10)); // in flight: no second repair
    await Bun.sleep(50);
    expect(frames(peer, "subscribe").length).toBe(2);

    peer.send({ type: "ack", ref: held[0]!.ref, topic: "room:a", seq: 10, epoch: "e1", recovered: true });
    for (const seq of [8, 9, 10]) peer.send(msg(seq));
    await waitFor(() => r.got.length === 5, 2000, "the replay");
    expect(r.seqs()).toEqual([6, 7, 8, 9, 10]);
    expect(r.recovered).toEqual([true]);
    expect(r.resyncs).toEqual([]);
  });

  test("a resync frame reaches onResync and the client event; live messages continue after its seq", async () => {
    const { client, server, peer } = await open();
    const { r } = await subscribed(client, server);
    const events: ResyncInfo[] = [];
    client.on("resync", (i) => events.push(i));
    peer.send(msg(6));
    peer.send({ type: "resync", topic: "room:a", seq: 0, epoch: "e2" });
    peer.send(msg(1, "e2"));
    await waitFor(() => r.got.length === 2, 2000, "two messages");
    expect(r.resyncs).toEqual([{ topic: "room:a", reason: "resync", seq: 0, epoch: "e2" }]);
    expect(events).toEqual(r.resyncs);
    expect(r.got.map((m) => `${m.epoch}/${m.seq}`)).toEqual(["e1/6", "e2/1"]);
  });

  test("a reconnect resubscribes with since the last delivered position; recovered:false becomes onResync", async () => {
    const held: Frame[] = [];
    const { client, server, peer } = await open({}, holding(held));
    const { r } = await subscribed(client, server);
    peer.send(msg(6));
    await waitFor(() => r.got.length === 1, 2000, "6");
    peer.close(1012, "server restarting");
    await waitFor(() => held.length === 1, 2000, "the resubscription");
    expect(held[0]).toMatchObject({ topic: "room:a", since: { seq: 6, epoch: "e1" } });
    const second = server.peers[1]!;
    second.send({ type: "ack", ref: held[0]!.ref, topic: "room:a", seq: 40, epoch: "e9", recovered: false });
    second.send(msg(41, "e9"));
    await waitFor(() => r.got.length === 2, 2000, "41");
    expect(r.recovered).toEqual([false]);
    expect(r.resyncs).toEqual([{ topic: "room:a", reason: "not_recovered", seq: 40, epoch: "e9" }]);
    expect(r.seqs()).toEqual([6, 41]);
  });

  test("messages of a topic without a Subscription (the personal inbox) go to the client's message event", async () => {
    const { client, peer } = await open();
    const inbox: Message[] = [];
    client.on("message", (m) => inbox.push(m));
    peer.send(msg(3, "e1", "user:alice"));
    await waitFor(() => inbox.length === 1, 2000, "inbox message");
    expect(inbox.map((m) => m.topic)).toEqual(["user:alice"]);
  });
});

describe("requests", () => {
  test("a publish in flight when the socket drops is resent with the same key; the timeout counts per send", async () => {
    const { client, server, peer } = await open(
      { requestTimeoutMs: 200 },
      {
        onOpen(p) {
          if (p.index === 0) p.welcome();
          else setTimeout(() => p.welcome(), 300); // longer than the timeout: waiting offline does not count
        },
        onFrame: (p, f) => f.type === "publish" && p.index === 0, // the first socket never answers
      },
    );
    const pending = client.publish("room:a", { n: 1 });
    const first = await peer.waitFrame((f) => f.type === "publish");
    expect(first.key).toMatch(/^[0-9a-f]{32}$/);
    peer.close(1011);
    const second = await server.waitPeers(2);
    const resent = await second.waitFrame((f) => f.type === "publish", 2000);
    expect(resent).toEqual(first);
    expect(await pending).toEqual({ topic: "room:a", seq: 1, epoch: "e1", key: first.key });
  });

  test("no reply within requestTimeoutMs rejects with code timeout; an error frame rejects with its code", async () => {
    const { client, peer } = await open(
      { requestTimeoutMs: 50 },
      {
        onFrame(p, f) {
          if (f.type === "presence") return true; // never answered
          if (f.type === "publish") return p.send({ type: "error", ref: f.ref, code: "rate_limited", message: "slow down" }), true;
        },
      },
    );
    expect(await client.presence("room:a").catch((e) => e.code)).toBe("timeout");
    const error = await client.publish("room:a", 1).catch((e) => e);
    expect(error).toMatchObject({ code: "rate_limited", message: "slow down", topic: "room:a", temporary: true });
    expect(peer.frames.filter((f) => f.type === "publish").length).toBe(1);
  });

  test("offline, at most maxQueuedRequests wait; one more is refused at once with overloaded; the queued ones go out on welcome", async () => {
    const { client, server, peer } = await open(
      { maxQueuedRequests: 3 },
      {
        onOpen(p) {
          if (p.index === 0) p.welcome(); // the second socket waits for the test
        },
      },
    );
    peer.close(1012);
    await waitFor(() => client.state !== "open", 2000, "offline");
    const queued = [1, 2, 3].map((n) => client.publish("room:a", n));
    const refused = await client.publish("room:a", 4).catch((e) => e);
    expect(refused).toMatchObject({ code: "overloaded", topic: "room:a", temporary: true }); // the queue drains on the next welcome
    const second = await server.waitPeers(2); // random() is 0 here: the 1012 reconnect starts at once
    second.welcome();
    expect((await Promise.all(queued)).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(frames(second, "publish").map((f) => f.data)).toEqual([1, 2, 3]);
  });

  test("an unsolicited error frame is emitted as an error event", async () => {
    const { client, peer } = await open();
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    peer.send({ type: "error", code: "bad_request", message: "?" });
    await waitFor(() => errors.length === 1, 2000, "error event");
    expect(errors).toEqual(["bad_request"]);
  });
});

describe("connection attempts", () => {
  test("token auth sends the token as the first frame; getToken is called for every attempt", async () => {
    let calls = 0;
    const server = serve({ firstMessageAuth: true });
    connect(server, { getToken: async () => `token-${++calls}` });
    const first = await server.waitPeers(1);
    await first.waitFrame((f) => f.type === "auth");
    expect(first.frames).toEqual([{ type: "auth", token: "token-1" }]);
    first.close(4002);
    const second = await server.waitPeers(2);
    await second.waitFrame((f) => f.type === "auth");
    expect(second.frames).toEqual([{ type: "auth", token: "token-2" }]);
  });

  test("ticket auth appends ?ticket= to the URL of each attempt", async () => {
    let n = 0;
    const server = serve();
    connect(server, { url: `${server.url}?x=1`, getTicket: async () => `t${++n}` });
    await server.waitPeers(1);
    expect(server.urls).toEqual(["/ws?x=1&ticket=t1"]);
    server.peers[0]!.close(1012);
    await server.waitPeers(2);
    expect(server.urls[1]).toBe("/ws?x=1&ticket=t2");
  });

  test("an upgrade that never completes is abandoned after connectTimeoutMs and retried", async () => {
    const server = serve({ onOpen: (p) => p.index > 0 && p.welcome() }); // no welcome on the first socket
    const client = connect(server, { connectTimeoutMs: 50 });
    const closed = client.once("closed");
    expect(await closed).toEqual({ code: 1006, reason: "connect timeout", reconnect: true });
    expect(await server.peers[0]!.closed).toEqual({ code: 4000, reason: "connect timeout" });
    await waitFor(() => client.state === "open", 2000, "the retry");
    expect(server.peers.length).toBe(2);
  });

  test("a credentials callback that never settles is abandoned after connectTimeoutMs and asked again", async () => {
    const server = serve({ firstMessageAuth: true });
    let calls = 0;
    // The first call hangs (a fetch on a dead network); the second answers.
    const client = connect(server, { connectTimeoutMs: 100, getToken: () => (++calls === 1 ? new Promise<string>(() => {}) : Promise.resolve("token-2")) });
    expect(await client.once("closed")).toEqual({ code: 1006, reason: "credentials timeout", reconnect: true });
    await waitFor(() => client.state === "open", 2000, "the retry");
    expect(calls).toBe(2);
    expect(server.peers.map((p) => p.token)).toEqual(["token-2"]);
  });

  test("the credentials and the socket each get connectTimeoutMs: slow both, the attempt still opens", async () => {
    const server = serve({ firstMessageAuth: true, onFrame: (p, f) => f.type === "auth" && (setTimeout(() => p.welcome(), 150), true) });
    const client = connect(server, { connectTimeoutMs: 200, getToken: () => Bun.sleep(150).then(() => "token") });
    await waitFor(() => client.state === "open", 2000, "open");
    expect(server.peers.length).toBe(1);
  });

  test("a credentials callback that resolves no string is a failed attempt with an error saying so, not a socket", async () => {
    const server = serve();
    const errors: string[] = [];
    // `(await res.json()).ticket` when /auth/ticket answered 401 {error}: undefined.
    const client = connect(server, { getTicket: async () => undefined as unknown as string });
    client.on("error", (e) => errors.push(`${e.code}: ${e.message}`));
    expect(await client.once("closed")).toEqual({ code: 1006, reason: "credentials unavailable", reconnect: true });
    expect(errors).toEqual(["unavailable: could not get credentials: options.getTicket resolved undefined, not a ticket"]);
    expect(server.peers.length).toBe(0);
  });

  test("a refused upgrade is a closed event with 1006; in Bun its reason says the HTTP status", async () => {
    const refusing = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("no", { status: 401 }) });
    cleanup.push(() => refusing.stop(true));
    const client = connect({ url: `ws://127.0.0.1:${refusing.port}/ws` } as ScriptedServer);
    const closed = await client.once("closed");
    expect(closed).toEqual({ code: 1006, reason: `WebSocket connection to 'ws://127.0.0.1:${refusing.port}/ws' failed: Expected 101 status code: 401`, reconnect: true });
  });

  test("an unanswered ping drops the socket and reconnects", async () => {
    const { client, server, peer } = await open({ pingIntervalMs: 20, pingTimeoutMs: 30 }, { onFrame: (p, f) => f.type === "ping" && p.index === 0 });
    const closed = client.once("closed");
    await peer.waitFrame((f) => f.type === "ping");
    expect(await closed).toEqual({ code: 1006, reason: "ping timeout", reconnect: true });
    await server.waitPeers(2);
    await waitFor(() => client.state === "open", 2000, "reopened");
  });

  test("answered pings keep the socket", async () => {
    const { client, server, peer } = await open({ pingIntervalMs: 20, pingTimeoutMs: 30 });
    await Bun.sleep(150);
    expect(client.state).toBe("open");
    expect(server.peers.length).toBe(1);
    expect(frames(peer, "ping").length).toBeGreaterThan(2);
  });

  test("close() settles what is pending with code closed and stops for good", async () => {
    const { client, server, peer } = await open({}, { onFrame: (_p, f) => f.type === "subscribe" || f.type === "publish" });
    const sub = client.subscribe("room:b", () => {}).catch((e) => e.code);
    const pub = client.publish("room:b", 1).catch((e) => e.code);
    await peer.waitFrame((f) => f.type === "publish");
    client.close();
    expect(await sub).toBe("closed");
    expect(await pub).toBe("closed");
    expect(await peer.closed).toEqual({ code: 1000, reason: "client closed" });
    expect(client.state).toBe("closed");
    await Bun.sleep(50);
    expect(server.peers.length).toBe(1);
  });
});

describe("options are checked when the client is built, in sentences", () => {
  test.each([
    ["options.getTicket and options.getToken exclude each other: pick one way to authenticate", { url: "ws://x/ws", getTicket: async () => "", getToken: async () => "" }],
    ["options.pingTimeoutMs must be a positive number of milliseconds, got -1", { url: "ws://x/ws", pingTimeoutMs: -1 }],
    ["options.reconnect.stableMs must be a non-negative number of milliseconds, got -5", { url: "ws://x/ws", reconnect: { stableMs: -5 } }],
    ["options.url must be a ws:, wss:, http: or https: URL, got ftp:", { url: "ftp://x/ws" }],
    ["options.url is required outside a browser (e.g. ws://localhost:3000/ws)", {}],
    ["options.reconnect.capMs must be at least options.reconnect.baseMs", { url: "ws://x/ws", reconnect: { baseMs: 1000, capMs: 10 } }],
  ] as [string, ClientOptions][])("%s", (sentence, options) => {
    expect(() => createClient({ ...options, autoConnect: false })).toThrow(sentence);
  });

  test("http(s) URLs become ws(s)", () => {
    expect(resolveUrl("https://example.com/ws")).toBe("wss://example.com/ws");
    expect(resolveUrl("http://example.com/ws?x=1")).toBe("ws://example.com/ws?x=1");
  });
});
