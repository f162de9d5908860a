/**
 * The SDK's frame-level contract, driven by a scripted socket. A correct server never sends a
 * gap, a duplicate or a stray epoch, so the real server cannot show how the client copes with
 * them; these tests script exactly those frames (createWebSocket is the SDK's injection point).
 * Everything a real server can do is tested against real processes in client*.test.ts.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createClient, type ClientOptions, type Message, type ResyncInfo, type SwitchboardClient } from "../src/client/index.ts";

class ScriptedSocket {
  static all: ScriptedSocket[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly sent: Record<string, any>[] = [];
  closedWith: { code?: number; reason?: string } | null = null;
  constructor(readonly url: string) {
    ScriptedSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code?: number, reason?: string) {
    this.closedWith = { code, reason };
  }
  // The server's side of the script:
  welcome() {
    this.onopen?.({});
    this.deliver({ type: "welcome", user: { id: "alice", name: "alice" }, connectionId: "c", instance: "i", region: "r" });
  }
  deliver(frame: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  serverClose(code: number, reason = "") {
    this.onclose?.({ code, reason });
  }
  lastSent(type: string) {
    return this.sent.findLast((f) => f.type === type)!;
  }
}

const clients: SwitchboardClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  ScriptedSocket.all = [];
});

const tick = () => Bun.sleep(0);
const last = () => ScriptedSocket.all.at(-1)!;

async function open(options: Partial<ClientOptions> = {}) {
  const client = createClient({
    url: "ws://switchboard.test/ws",
    network: null,
    pingIntervalMs: 60_000,
    random: () => 0,
    createWebSocket: (url) => new ScriptedSocket(url) as unknown as WebSocket,
    ...options,
  });
  clients.push(client);
  await tick();
  last().welcome();
  return client;
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

async function subscribed(client: SwitchboardClient, seq = 5, epoch = "e1") {
  const r = recorder();
  const pending = client.subscribe("room:a", r.handlers);
  const frame = last().lastSent("subscribe");
  expect(frame).toEqual({ type: "subscribe", topic: "room:a", ref: frame.ref });
  last().deliver({ type: "ack", ref: frame.ref, topic: "room:a", seq, epoch, recovered: false });
  const sub = await pending;
  expect(sub.position).toEqual({ seq, epoch });
  return { r, sub };
}

describe("positions: duplicates dropped, gaps repaired, resync surfaced", () => {
  test("duplicates by seq are dropped; a gap is repaired by unsubscribe + subscribe since the last delivered", async () => {
    const client = await open();
    const { r } = await subscribed(client);
    const s = last();
    for (const seq of [6, 7, 7, 6]) s.deliver(msg(seq));
    expect(r.seqs()).toEqual([6, 7]);

    s.deliver(msg(9)); // 8 is missing
    expect(s.sent.slice(-2).map((f) => f.type)).toEqual(["unsubscribe", "subscribe"]);
    const resub = s.lastSent("subscribe");
    expect(resub).toMatchObject({ topic: "room:a", since: { seq: 7, epoch: "e1" } });
    s.deliver(msg(10)); // in flight: no second repair
    expect(s.sent.filter((f) => f.type === "subscribe").length).toBe(2);

    s.deliver({ type: "ack", ref: resub.ref, topic: "room:a", seq: 10, epoch: "e1", recovered: true });
    for (const seq of [8, 9, 10]) s.deliver(msg(seq));
    expect(r.seqs()).toEqual([6, 7, 8, 9, 10]);
    expect(r.recovered).toEqual([true]);
    expect(r.resyncs).toEqual([]);
  });

  test("a resync frame reaches onResync and the client event; live messages continue after its seq", async () => {
    const client = await open();
    const { r } = await subscribed(client);
    const events: ResyncInfo[] = [];
    client.on("resync", (i) => events.push(i));
    last().deliver(msg(6));
    last().deliver({ type: "resync", topic: "room:a", seq: 0, epoch: "e2" });
    last().deliver(msg(1, "e2"));
    expect(r.resyncs).toEqual([{ topic: "room:a", reason: "resync", seq: 0, epoch: "e2" }]);
    expect(events).toEqual(r.resyncs);
    expect(r.got.map((m) => `${m.epoch}/${m.seq}`)).toEqual(["e1/6", "e2/1"]);
  });

  test("a reconnect resubscribes with since the last delivered position; recovered:false becomes onResync", async () => {
    const client = await open();
    const { r } = await subscribed(client);
    last().deliver(msg(6));
    last().serverClose(1012, "server restarting");
    await Bun.sleep(5);
    last().welcome();
    const resub = last().lastSent("subscribe");
    expect(resub).toMatchObject({ topic: "room:a", since: { seq: 6, epoch: "e1" } });
    last().deliver({ type: "ack", ref: resub.ref, topic: "room:a", seq: 40, epoch: "e9", recovered: false });
    expect(r.recovered).toEqual([false]);
    expect(r.resyncs).toEqual([{ topic: "room:a", reason: "not_recovered", seq: 40, epoch: "e9" }]);
    last().deliver(msg(41, "e9"));
    expect(r.seqs()).toEqual([6, 41]);
  });

  test("messages of a topic without a Subscription (the personal inbox) go to the client's message event", async () => {
    const client = await open();
    const inbox: Message[] = [];
    client.on("message", (m) => inbox.push(m));
    last().deliver(msg(3, "e1", "user:alice"));
    expect(inbox.map((m) => m.topic)).toEqual(["user:alice"]);
  });
});

describe("requests", () => {
  test("a publish in flight when the socket drops is resent with the same key; the timeout counts per send", async () => {
    const client = await open({ requestTimeoutMs: 200 });
    const pending = client.publish("room:a", { n: 1 });
    const first = last().lastSent("publish");
    expect(first.key).toMatch(/^[0-9a-f]{32}$/);
    last().serverClose(1011);
    await Bun.sleep(300); // longer than the timeout: waiting offline does not count
    last().welcome();
    const resent = last().lastSent("publish");
    expect(resent).toEqual(first);
    last().deliver({ type: "ack", ref: resent.ref, topic: "room:a", seq: 12, epoch: "e1" });
    expect(await pending).toEqual({ topic: "room:a", seq: 12, epoch: "e1", key: first.key });
  });

  test("no reply within requestTimeoutMs rejects with code timeout; an error frame rejects with its code", async () => {
    const client = await open({ requestTimeoutMs: 50 });
    expect(await client.presence("room:a").catch((e) => e.code)).toBe("timeout");
    const pending = client.publish("room:a", 1).catch((e) => e);
    last().deliver({ type: "error", ref: last().lastSent("publish").ref, code: "rate_limited", message: "slow down" });
    expect(await pending).toMatchObject({ code: "rate_limited", message: "slow down", topic: "room:a", temporary: true });
  });

  test("offline, at most maxQueuedRequests wait; one more is refused at once with overloaded; the queued ones go out on welcome", async () => {
    const client = await open({ maxQueuedRequests: 3 });
    last().serverClose(1012);
    const queued = [1, 2, 3].map((n) => client.publish("room:a", n));
    const refused = await client.publish("room:a", 4).catch((e) => e);
    expect(refused).toMatchObject({ code: "overloaded", topic: "room:a" });
    await Bun.sleep(50); // random() is 0 here: the 1012 reconnect starts at once
    last().welcome();
    const sent = last().sent.filter((f) => f.type === "publish");
    expect(sent.map((f) => f.data)).toEqual([1, 2, 3]);
    for (const f of sent) last().deliver({ type: "ack", ref: f.ref, topic: "room:a", seq: f.data, epoch: "e1" });
    expect((await Promise.all(queued)).map((r) => r.seq)).toEqual([1, 2, 3]);
  });

  test("an unsolicited error frame is emitted as an error event", async () => {
    const client = await open();
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    last().deliver({ type: "error", code: "bad_request", message: "?" });
    expect(errors).toEqual(["bad_request"]);
  });
});

describe("connection attempts", () => {
  test("token auth sends the token as the first frame; getToken is called for every attempt", async () => {
    let calls = 0;
    const client = createClient({
      url: "ws://switchboard.test/ws",
      network: null,
      random: () => 0,
      getToken: async () => `token-${++calls}`,
      createWebSocket: (url) => new ScriptedSocket(url) as unknown as WebSocket,
    });
    clients.push(client);
    await tick();
    await tick();
    last().onopen?.({});
    expect(last().sent).toEqual([{ type: "auth", token: "token-1" }]);
    last().serverClose(4002);
    await Bun.sleep(5);
    last().onopen?.({});
    expect(last().sent).toEqual([{ type: "auth", token: "token-2" }]);
  });

  test("ticket auth appends ?ticket= to the URL of each attempt", async () => {
    let n = 0;
    const client = createClient({
      url: "ws://switchboard.test/ws?x=1",
      network: null,
      getTicket: async () => `t${++n}`,
      createWebSocket: (url) => new ScriptedSocket(url) as unknown as WebSocket,
    });
    clients.push(client);
    await Bun.sleep(5);
    expect(last().url).toBe("ws://switchboard.test/ws?x=1&ticket=t1");
  });

  test("an upgrade that never completes is abandoned after connectTimeoutMs and retried", async () => {
    const client = createClient({
      url: "ws://switchboard.test/ws",
      network: null,
      connectTimeoutMs: 50,
      random: () => 0,
      createWebSocket: (url) => new ScriptedSocket(url) as unknown as WebSocket,
    });
    clients.push(client);
    const closed: unknown[] = [];
    client.on("closed", (e) => closed.push(e));
    await Bun.sleep(120);
    expect(closed[0]).toEqual({ code: 1006, reason: "connect timeout", reconnect: true });
    expect(ScriptedSocket.all.length).toBeGreaterThanOrEqual(2);
    expect(ScriptedSocket.all[0]!.closedWith).toEqual({ code: 4000, reason: "connect timeout" });
  });

  test("an unanswered ping drops the socket and reconnects", async () => {
    const client = await open({ pingIntervalMs: 20, pingTimeoutMs: 30 });
    const first = last();
    const closed = client.once("closed");
    await Bun.sleep(30);
    expect(first.sent.some((f) => f.type === "ping")).toBe(true);
    expect(await closed).toEqual({ code: 1006, reason: "ping timeout", reconnect: true });
    await Bun.sleep(5);
    expect(ScriptedSocket.all.length).toBe(2);
  });

  test("answered pings keep the socket", async () => {
    const client = await open({ pingIntervalMs: 20, pingTimeoutMs: 30 });
    const s = last();
    const answer = setInterval(() => {
      const ping = s.lastSent("ping");
      if (ping && !ping.answered) {
        ping.answered = true;
        s.deliver({ type: "pong", ref: ping.ref });
      }
    }, 5);
    await Bun.sleep(150);
    clearInterval(answer);
    expect(client.state).toBe("open");
    expect(ScriptedSocket.all.length).toBe(1);
    expect(s.sent.filter((f) => f.type === "ping").length).toBeGreaterThan(2);
  });

  test("close() settles what is pending with code closed and stops for good", async () => {
    const client = await open();
    const sub = client.subscribe("room:b", () => {}).catch((e) => e.code);
    const pub = client.publish("room:b", 1).catch((e) => e.code);
    client.close();
    expect(await sub).toBe("closed");
    expect(await pub).toBe("closed");
    expect(last().closedWith).toEqual({ code: 1000, reason: "client closed" });
    expect(client.state).toBe("closed");
    await Bun.sleep(20);
    expect(ScriptedSocket.all.length).toBe(1);
  });
});

describe("options are checked when the client is built, in sentences", () => {
  test.each([
    ["options.getTicket and options.getToken exclude each other: pick one way to authenticate", { url: "ws://x/ws", getTicket: async () => "", getToken: async () => "" }],
    ["options.pingTimeoutMs must be a positive number of milliseconds, got -1", { url: "ws://x/ws", pingTimeoutMs: -1 }],
    ["options.url must be a ws:, wss:, http: or https: URL, got ftp:", { url: "ftp://x/ws" }],
    ["options.url is required outside a browser (e.g. ws://localhost:3000/ws)", {}],
    ["options.reconnect.capMs must be at least options.reconnect.baseMs", { url: "ws://x/ws", reconnect: { baseMs: 1000, capMs: 10 } }],
  ] as [string, ClientOptions][])("%s", (sentence, options) => {
    expect(() => createClient({ ...options, autoConnect: false })).toThrow(sentence);
  });

  test("http(s) URLs become ws(s)", () => {
    const client = createClient({ url: "https://example.com/ws", autoConnect: false, createWebSocket: (u) => new ScriptedSocket(u) as unknown as WebSocket });
    clients.push(client);
    client.connect();
    return tick().then(() => expect(last().url).toBe("wss://example.com/ws"));
  });
});
