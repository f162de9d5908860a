/**
 * SPEC §3 "Frames" and "Topics and permissions", and the server-to-server `POST /api/publish`
 * (§2), seen by real WebSocket clients. Presence has its own file (presence.test.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { TestClient, closeAll } from "./support/client.ts";
import { TEST_API_KEY, apiPublish, session, startServer, type TestServer, killAllServers } from "./support/server.ts";

let server: TestServer;
let bare: TestServer; // no API_KEY
const clients = new Set<TestClient>();
let topicCounter = 0;
/** A fresh room per test, so tests never see each other's traffic. */
const room = (name: string) => `room:${name}-${++topicCounter}`;

async function connect(user: string): Promise<TestClient> {
  const s = await session(server, user);
  const c = await TestClient.connect(server.wsUrl, { cookie: s.cookie, origin: server.origin });
  clients.add(c);
  return c;
}

async function userId(user: string) {
  return (await session(server, user)).user.id;
}

beforeAll(async () => {
  [server, bare] = await Promise.all([startServer({ INSTANCE_ID: "proto-1" }), startServer({ API_KEY: undefined })]);
}, 30_000);
// Each test closes its sockets, so the per-user cap (MAX_CONNECTIONS_PER_USER) never fills up.
afterEach(async () => {
  await closeAll(clients);
  clients.clear();
});
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  bare?.kill();
  killAllServers();
});

describe("welcome", () => {
  test("{type, user:{id,name}, connectionId, instance, region}", async () => {
    const s = await session(server, "alice");
    const c = new TestClient(server.wsUrl, { cookie: s.cookie });
    clients.add(c);
    const w = await c.welcome();
    expect(w).toEqual({ type: "welcome", user: s.user, connectionId: expect.any(String), instance: expect.any(String), region: "local" });
    expect(w.instance).toContain("proto-1");
    const other = await connect("alice");
    expect(other.ofType("welcome")[0]!.connectionId).not.toBe(w.connectionId);
  });
});

describe("subscribe / publish / unsubscribe", () => {
  test("subscribe → ack {ref, topic, seq, epoch}; publish → ack {ref, seq}; every subscriber, the publisher too, gets the message", async () => {
    const topic = room("basic");
    const [alice, bob] = await Promise.all([connect("alice"), connect("bob")]);
    const ackA = await alice.request({ type: "subscribe", topic, ref: 1 });
    // structuredClone: Bun 1.4.5's toMatchObject overwrites the received object's fields with asymmetric matchers.
    expect(structuredClone(ackA)).toMatchObject({ type: "ack", ref: 1, topic, seq: expect.any(Number), epoch: expect.any(String) });
    const ackB = await bob.request({ type: "subscribe", topic, ref: 1 });
    expect(ackB).toMatchObject({ type: "ack", ref: 1, topic, seq: ackA.seq, epoch: ackA.epoch });
    const s0 = ackA.seq as number;

    const before = Date.now();
    const pub = await alice.request({ type: "publish", topic, data: { text: "hi", n: [1, 2] }, ref: 2 });
    expect(pub).toMatchObject({ type: "ack", ref: 2, seq: s0 + 1 });
    for (const c of [alice, bob]) {
      const [m] = await c.waitMessages(topic, 1);
      expect(m).toEqual({ type: "message", topic, seq: s0 + 1, epoch: ackA.epoch, from: (await userId("alice")), data: { text: "hi", n: [1, 2] }, ts: expect.any(Number) });
      expect(m!.ts).toBeGreaterThanOrEqual(before - 1000);
      expect(m!.ts).toBeLessThanOrEqual(Date.now() + 1000);
    }
    const pub2 = await bob.request({ type: "publish", topic, data: "second" });
    expect(pub2.seq).toBe(s0 + 2);
    expect((await alice.waitMessages(topic, 2))[1]).toMatchObject({ seq: s0 + 2, data: "second", from: await userId("bob") });
  });

  test("a publisher that is not subscribed does not get its own message", async () => {
    const topic = room("nosub");
    const [alice, bob] = await Promise.all([connect("alice"), connect("bob")]);
    await bob.subscribe(topic);
    await alice.publish(topic, 1);
    await bob.waitMessages(topic, 1);
    await alice.request({ type: "ping" });
    expect(alice.messages.get(topic)).toBeUndefined();
  });

  test("unsubscribe → ack {ref}; no more messages on that topic", async () => {
    const topic = room("unsub");
    const [alice, bob] = await Promise.all([connect("alice"), connect("bob")]);
    await alice.subscribe(topic);
    await bob.subscribe(topic);
    await bob.publish(topic, "one");
    await alice.waitMessages(topic, 1);
    expect(await alice.request({ type: "unsubscribe", topic, ref: 9 })).toMatchObject({ type: "ack", ref: 9 });
    await bob.publish(topic, "two");
    await bob.waitMessages(topic, 2);
    await Bun.sleep(100);
    await alice.request({ type: "ping" });
    expect(alice.messages.get(topic)!.map((m) => m.data)).toEqual(["one"]);
  });

  test("ping → pong with the ref", async () => {
    const c = await connect("alice");
    expect(await c.request({ type: "ping", ref: 42 })).toEqual({ type: "pong", ref: 42 });
  });
});

describe("each socket's frames are handled in arrival order", () => {
  test("pipelined subscribe, publish, unsubscribe, publish: replies in order, only the first message delivered", async () => {
    const topic = room("pipeline");
    const c = await connect("alice");
    const frames = [
      { type: "subscribe", topic, ref: 1 },
      { type: "publish", topic, data: "first", ref: 2 },
      { type: "unsubscribe", topic, ref: 3 },
      { type: "publish", topic, data: "second", ref: 4 },
      { type: "ping", ref: 5 },
    ];
    for (const f of frames) c.send(f);
    await c.next((f) => f.ref === 5);
    const replies = c.frames.filter((f) => typeof f.ref === "number" && f.ref <= 5);
    expect(replies.map((f) => [f.ref, f.type])).toEqual([[1, "ack"], [2, "ack"], [3, "ack"], [4, "ack"], [5, "pong"]]);
    expect(replies[3]!.seq).toBe(replies[1]!.seq + 1);
    await Bun.sleep(50);
    expect(c.messages.get(topic)!.map((m) => m.data)).toEqual(["first"]);
  });

  test("pipelined publishes get rising seq in the order they were sent", async () => {
    const topic = room("pipeline-seq");
    const c = await connect("bob");
    const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => c.request({ type: "publish", topic, data: i })));
    const seqs = acks.map((a) => a.seq as number);
    expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => seqs[0]! + i));
  });
});

describe("malformed frames get bad_request and the socket stays usable", () => {
  test("invalid JSON", async () => {
    const c = await connect("alice");
    c.send("{not json");
    const err = await c.nextType("error");
    expect(structuredClone(err)).toMatchObject({ code: "bad_request", message: expect.any(String) });
    expect(JSON.stringify(err)).not.toMatch(/\n\s+at |\.ts:\d+/);
    expect((await c.request({ type: "ping", ref: 1 })).type).toBe("pong");
  });

  test("an unknown type, a missing field, a wrong field type: error bad_request with the ref", async () => {
    const c = await connect("alice");
    for (const frame of [
      { type: "nope", ref: 3 },
      { type: "subscribe", ref: 4 },
      { type: "publish", topic: 7, data: 1, ref: 5 },
      { type: "subscribe", topic: "room:x", since: { seq: "one" }, ref: 6 },
      { type: "publish", topic: "room:x", data: 1, key: "k".repeat(65), ref: 7 },
    ]) {
      const reply = await c.request(frame);
      expect(reply).toMatchObject({ type: "error", ref: frame.ref, code: "bad_request" });
    }
    expect(await c.request({ type: "ping", ref: 8 })).toEqual({ type: "pong", ref: 8 });
    c.send("[]");
    c.send("null");
    c.send('"text"');
    expect((await c.next((f) => f.type === "error")).code).toBe("bad_request");
    expect(await c.request({ type: "ping", ref: 9 })).toEqual({ type: "pong", ref: 9 });
  });
});

describe("topics and permissions", () => {
  test("a name that breaks ^[A-Za-z0-9:_.@|+=-]{1,128}$ → bad_request", async () => {
    const c = await connect("alice");
    for (const topic of ["room:has space", "room/slash", "", "room:" + "x".repeat(124), "room:é"]) {
      expect(await c.request({ type: "subscribe", topic })).toMatchObject({ type: "error", code: "bad_request" });
      expect(await c.request({ type: "publish", topic, data: 1 })).toMatchObject({ type: "error", code: "bad_request" });
    }
    // 128 characters exactly is fine.
    expect((await c.request({ type: "subscribe", topic: "room:" + "x".repeat(123) })).type).toBe("ack");
  });

  test("a valid name outside the namespaces → forbidden", async () => {
    const c = await connect("alice");
    for (const topic of ["secret:x", "nonamespace", "rooms:x", "admin:all"]) {
      expect(await c.request({ type: "subscribe", topic, ref: 1 })).toMatchObject({ type: "error", ref: 1, code: "forbidden" });
      expect(await c.request({ type: "publish", topic, data: 1, ref: 2 })).toMatchObject({ type: "error", ref: 2, code: "forbidden" });
    }
  });

  test("user:<other> cannot be subscribed; user:<self> can", async () => {
    const c = await connect("alice");
    const bobInbox = `user:${await userId("bob")}`;
    expect(await c.request({ type: "subscribe", topic: bobInbox })).toMatchObject({ type: "error", code: "forbidden" });
    expect((await c.request({ type: "subscribe", topic: `user:${await userId("alice")}` })).type).toBe("ack");
  });

  test("presence of a topic the user may not subscribe to → forbidden", async () => {
    const c = await connect("alice");
    const bobInbox = `user:${await userId("bob")}`;
    expect(await c.request({ type: "presence", topic: bobInbox, ref: 4 })).toMatchObject({ type: "error", ref: 4, code: "forbidden" });
    expect(await c.request({ type: "presence", topic: "secret:x", ref: 5 })).toMatchObject({ type: "error", ref: 5, code: "forbidden" });
    expect(await c.request({ type: "presence", topic: "bad topic", ref: 6 })).toMatchObject({ type: "error", ref: 6, code: "bad_request" });
  });

  test("a direct message to user:<id> reaches that user's inbox, joined at welcome without a subscribe", async () => {
    const [alice, bob, bob2, carol] = await Promise.all([connect("alice"), connect("bob"), connect("bob"), connect("carol")]);
    const inbox = `user:${await userId("bob")}`;
    const ack = await alice.publish(inbox, { dm: "hello bob" });
    for (const c of [bob, bob2]) {
      const [m] = await c.waitMessages(inbox, 1);
      expect(m).toMatchObject({ type: "message", topic: inbox, seq: ack.seq, from: await userId("alice"), data: { dm: "hello bob" } });
    }
    await carol.request({ type: "ping" });
    expect(carol.messages.get(inbox)).toBeUndefined();
    expect(alice.messages.get(inbox)).toBeUndefined();
  });

  test("broadcast:* can be subscribed but not published from a socket; the API publishes it with from:\"server\"", async () => {
    const topic = `broadcast:news-${++topicCounter}`;
    const c = await connect("alice");
    const sub = await c.subscribe(topic);
    expect(await c.request({ type: "publish", topic, data: 1, ref: 3 })).toMatchObject({ type: "error", ref: 3, code: "forbidden" });
    const r = await apiPublish(server, { topic, data: { headline: "hi" } });
    expect(r.status).toBe(202);
    expect(r.body).toEqual({ topic, seq: sub.seq + 1, epoch: sub.epoch });
    const [m] = await c.waitMessages(topic, 1);
    expect(m).toMatchObject({ topic, seq: sub.seq + 1, epoch: sub.epoch, from: "server", data: { headline: "hi" } });
    expect(c.messages.get(topic)).toHaveLength(1);
  });
});

describe("idempotency keys", () => {
  test("the same key on the same topic returns the first seq and publishes once", async () => {
    const topic = room("idem");
    const [pub, sub] = await Promise.all([connect("alice"), connect("bob")]);
    await sub.subscribe(topic);
    const first = await pub.publish(topic, "once", "key-1");
    const again = await pub.publish(topic, "once", "key-1");
    expect(again.seq).toBe(first.seq);
    const fromOther = await sub.publish(topic, "once", "key-1");
    expect(fromOther.seq).toBe(first.seq);
    const marker = await pub.publish(topic, "marker");
    expect(marker.seq).toBe(first.seq + 1);
    const msgs = await sub.waitMessages(topic, 2);
    await Bun.sleep(50);
    expect(sub.messages.get(topic)!.map((m) => m.data)).toEqual(["once", "marker"]);
    expect(msgs.map((m) => m.seq)).toEqual([first.seq, first.seq + 1]);
  });

  test("the same key on another topic is another publication", async () => {
    const c = await connect("alice");
    const a = room("idem-a");
    const b = room("idem-b");
    const zeroA = await c.publish(a, 0);
    const onA = await c.publish(a, 1, "shared");
    const firstB = await c.publish(b, 0);
    const onB = await c.publish(b, 1, "shared");
    expect(onA.seq).toBe(zeroA.seq + 1);
    expect(onB.seq).toBe(firstB.seq + 1);
  });

  test("/api/publish keys deduplicate exactly as on the socket", async () => {
    const topic = room("idem-api");
    const c = await connect("carol");
    await c.subscribe(topic);
    const viaSocket = await c.publish(topic, "x", "api-key-1");
    const r1 = await apiPublish(server, { topic, data: "x", key: "api-key-1" });
    expect(r1.status).toBe(202);
    expect(r1.body.seq).toBe(viaSocket.seq);
    const r2 = await apiPublish(server, { topic, data: "y", key: "api-key-2" });
    const r3 = await apiPublish(server, { topic, data: "y", key: "api-key-2" });
    expect(r3.body.seq).toBe(r2.body.seq);
    expect(r2.body.seq).toBe(viaSocket.seq + 1);
    await c.waitMessages(topic, 2);
    await Bun.sleep(50);
    expect(c.messages.get(topic)!.map((m) => m.data)).toEqual(["x", "y"]);
  });
});

describe("POST /api/publish", () => {
  const nested = (levels: number) => "[".repeat(levels) + "]".repeat(levels);

  test("data nested 50,000 levels → 400 bad_request at once (never a stack overflow answered as 503 'broker unreachable, retry')", async () => {
    const started = performance.now();
    const res = await apiPublish(server, `{"topic":"room:deep","data":${nested(50_000)}}`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("bad_request");
    expect(performance.now() - started).toBeLessThan(300);
  });

  test("a body has a frame's nesting limit (32 levels, body included): 31 levels of data publish, 32 do not", async () => {
    const ok = await apiPublish(server, `{"topic":"room:deep","data":${nested(31)}}`);
    expect(ok.status).toBe(202);
    expect(ok.body).toMatchObject({ topic: "room:deep", seq: 1 });
    const deep = await apiPublish(server, `{"topic":"room:deep","data":${nested(32)}}`);
    expect(deep.status).toBe(400);
    const after = await apiPublish(server, { topic: "room:deep", data: "flat" });
    expect(after.body.seq).toBe(2);
  });

  test("202 {topic, seq, epoch}; subscribers get the message from \"server\"", async () => {
    const topic = room("api");
    const c = await connect("alice");
    const ack = await c.subscribe(topic);
    const r = await apiPublish(server, { topic, data: { n: 1 } });
    expect(r.status).toBe(202);
    expect(r.body).toEqual({ topic, seq: ack.seq + 1, epoch: ack.epoch });
    expect((await c.waitMessages(topic, 1))[0]).toMatchObject({ seq: ack.seq + 1, from: "server", data: { n: 1 } });
  });

  test("401 without the key or with a wrong one; nothing is published", async () => {
    const topic = room("api-401");
    const c = await connect("alice");
    const sub = await c.subscribe(topic);
    for (const key of [null, "wrong-key-0123456789abcdef"]) {
      const r = await apiPublish(server, { topic, data: 1 }, key);
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
    }
    const ok = await apiPublish(server, { topic, data: 2 });
    expect(ok.body.seq).toBe(sub.seq + 1);
  });

  test("400 for an invalid body or topic", async () => {
    for (const body of [{ data: 1 }, { topic: "room:has space", data: 1 }, "{nope"]) {
      const r = await apiPublish(server, body);
      expect(r.status).toBe(400);
      expect(r.body).toEqual({ error: { code: "bad_request", message: expect.any(String) } });
    }
  });
});

describe("a number JSON cannot represent (1e999 parses to Infinity) is refused, never published as null", () => {
  // Raw text: JSON.stringify would write these as null before they left.
  const huge = ["1e999", "-1E+999", `{"a":[1,2,{"b":9.9e308}]}`, "1" + "0".repeat(400), `{"x":1${"0".repeat(250)}e99}`];
  // Numbers that look large but JSON represents (or rounds to 0), and a string that looks like one.
  const fine: [string, unknown][] = [["1e308", 1e308], ["1e-999", 0], ['"1e999"', "1e999"], [`{"id":"${"7".repeat(300)}"}`, { id: "7".repeat(300) }], ["123e45", 123e45]];

  test("a publish frame: error bad_request naming the field, with the ref; nothing reaches subscribers; the socket stays", async () => {
    const topic = room("huge");
    const c = await connect("alice");
    const watcher = await connect("bob");
    const ack = await watcher.subscribe(topic);
    let ref = 100;
    for (const data of huge) {
      c.send(`{"type":"publish","topic":"${topic}","ref":${++ref},"data":${data}}`);
      const reply = await c.next((f) => f.ref === ref);
      expect(reply).toMatchObject({ type: "error", ref, code: "bad_request", message: expect.stringMatching(/^data(\.[\w.]+)?: number out of range$/) });
    }
    for (const [i, [data, value]] of fine.entries()) {
      c.send(`{"type":"publish","topic":"${topic}","ref":${++ref},"data":${data}}`);
      expect(await c.next((f) => f.ref === ref)).toMatchObject({ type: "ack", ref });
      expect((await watcher.waitMessages(topic, i + 1))[i]).toMatchObject({ seq: ack.seq + 1 + i, data: value });
    }
    expect(watcher.messages.get(topic)!.length).toBe(fine.length);
  });

  test("POST /api/publish and /api/broadcast: 400 bad_request; nothing published", async () => {
    const topic = room("huge-api");
    const watcher = await connect("bob");
    const ack = await watcher.subscribe(topic);
    const headers = { Authorization: `Bearer ${TEST_API_KEY}`, "Content-Type": "application/json" };
    for (const data of huge) {
      for (const [path, body] of [["/api/publish", `{"topic":"${topic}","data":${data}}`], ["/api/broadcast", `{"topics":["${topic}"],"data":${data}}`]] as const) {
        const res = await fetch(`${server.url}${path}`, { method: "POST", headers, body });
        expect(res.status).toBe(400);
        expect(await res.json()).toEqual({ error: { code: "bad_request", message: expect.stringMatching(/^data(\.[\w.]+)?: number out of range$/) } });
      }
    }
    const ok = await apiPublish(server, `{"topic":"${topic}","data":{"big":1e308}}`);
    expect(ok.body.seq).toBe(ack.seq + 1);
    expect((await watcher.waitMessages(topic, 1))[0]!.data).toEqual({ big: 1e308 });
  });
});

describe("the server API is disabled without API_KEY", () => {
  test("/api/publish → 404", async () => {
    const r = await apiPublish(bare, { topic: "room:x", data: 1 }, "anything-0123456789abcdef");
    expect(r.status).toBe(404);
  });
});

describe("nothing a client sends can crash the server or get a stack trace back", () => {
  test("arbitrary JSON and near-valid frames get replies or errors without internals; the socket and server stay up", async () => {
    const c = await connect("carol");
    const topicish = fc.oneof(fc.constantFrom("room:a", "user:x", "broadcast:b", "secret:s", ""), fc.string({ maxLength: 140 }), fc.anything());
    const frame = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }),
      fc.record(
        {
          type: fc.constantFrom("subscribe", "unsubscribe", "publish", "presence", "ping", "auth", "welcome", "__proto__", "constructor"),
          topic: topicish,
          ref: fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 5 }), fc.constant(-1)),
          data: fc.jsonValue({ maxDepth: 3 }),
          since: fc.anything({ maxDepth: 2 }),
          key: fc.oneof(fc.string({ maxLength: 70 }), fc.integer()),
          token: fc.string({ maxLength: 20 }),
        },
        { requiredKeys: ["type"] },
      ),
    );
    const samples = fc.sample(frame, { numRuns: 70, seed: 4242 });
    const texts = samples.map((f) => {
      try {
        return JSON.stringify(f) ?? "null";
      } catch {
        return "{}";
      }
    });
    texts.push('{"type":"subscribe","topic":"room:a","__proto__":{"admin":true}}', "1e400", "[".repeat(5000) + "]".repeat(5000), '{"type":"ping","ref":1e400}', '{"type":', "\u0000");
    for (const t of texts) c.send(t.length > 60_000 ? t.slice(0, 60_000) : t);
    const pong = await c.request({ type: "ping", ref: 999_999 }, 5000);
    expect(pong).toEqual({ type: "pong", ref: 999_999 });
    for (const f of c.frames) {
      const text = JSON.stringify(f);
      expect(text).not.toMatch(/\n\s+at |\.ts:\d+|node_modules/);
      if (f.type === "error") expect(["bad_request", "forbidden", "not_found", "too_large"]).toContain(f.code);
    }
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
  });

  test("the server logged no error, stack trace or unhandled rejection", async () => {
    await Bun.sleep(50);
    expect(server.faults()).toEqual([]);
  });
});
