/**
 * One Connection on fakes: a ConnectionHost that records what the socket asks of it, and a fake
 * Bun socket that records frames and closes. What a client would see — frames and close codes —
 * is asserted, plus what the connection asked of the rest of the process.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { ServerWebSocket } from "bun";
import type { Identity, Outcome } from "../auth/credentials.ts";
import type { Position, PublishInput, PublishResult } from "../broker/broker.ts";
import type { PresenceMember } from "../protocol/frames.ts";
import { Close, ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { createLogger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import type { Ack } from "./hub.ts";
import { Permissions, type Action, type Decision } from "../auth/permissions.ts";
import { loadNamespaces, type Namespace } from "../auth/namespaces.ts";
import type { ConnectionHost, Socket } from "./connection-host.ts";
import { Connection, type SocketData } from "./connection.ts";
import { ackFrame } from "./publish-frames.ts";

const alice = { id: "alice", name: "alice" };
const cookie: Identity = { user: alice, sid: "s1", exp: null, iat: null, caps: null, via: "cookie" };

class FakeHost implements ConnectionHost {
  readonly config = { rateLimitPerS: 1000, rateLimitBurst: 1000, authTimeoutMs: 5000, instanceId: "i-1", region: "test", backpressureLimitBytes: 1 << 20 };
  /** The per-user cap is the gateway's (tested black-box in test/budgets/subscriptions.test.ts). */
  readonly subscriptions = { maxPerSocket: 256, take() {}, give() {} };
  readonly metrics = new Metrics();
  readonly log = createLogger("silent");
  readonly calls: string[] = [];
  readonly authFailures: string[] = [];
  tokens = new Map<string, Identity>([["good", { ...cookie, sid: "s2", via: "token" }]]);
  userFull = false;
  /** Delay of follow(), to see that frames wait for each other. */
  followMs = 0;
  publishError: unknown = null;
  seq = 0;

  async authenticate(token: string): Promise<Outcome | null> {
    const identity = this.tokens.get(token);
    return identity === undefined ? { ok: false, reason: "bad_token", message: "invalid or expired token" } : { ok: true, identity };
  }
  admit(_conn: Socket, identity: Identity): boolean {
    this.calls.push(`admit ${identity.user.id}`);
    return !this.userFull;
  }
  renewed(_conn: Socket, identity: Identity): void {
    this.calls.push(`renewed ${identity.user.id}`);
  }
  opened(conn: Socket): void {
    this.calls.push(`opened ${conn.via}`);
  }
  forget(): void {
    this.calls.push("forget");
  }
  /** The real rules, on the built-in namespaces. */
  readonly permissions = new Permissions(loadNamespaces({ historySize: 100, historyTtlS: 300 }), null);
  authorize(conn: Socket, action: Action, topic: unknown): Promise<Namespace> {
    return this.permissions.authorize({ kind: "user", user: conn.user!, caps: conn.caps }, action, topic);
  }
  readsPresence(conn: Socket, topic: string): boolean {
    return this.permissions.readsPresence({ kind: "user", user: conn.user!, caps: conn.caps }, topic);
  }
  subscribeVerdict(conn: Socket, topic: string): Decision["verdict"] {
    return this.permissions.verdictNow({ kind: "user", user: conn.user!, caps: conn.caps }, "subscribe", topic);
  }
  async follow(_conn: Socket, topic: string, since: Position | undefined, onAck: (ack: Ack) => void): Promise<void> {
    if (this.followMs > 0) await Bun.sleep(this.followMs);
    this.calls.push(`follow ${topic}`);
    onAck({ seq: 7, epoch: "e", recovered: since !== undefined, replayed: 0 });
  }
  /** Topics followNow() joins at once (as the hub does for a topic it already follows). */
  followedNow = new Set<string>();
  followNow(_conn: Socket, topic: string): boolean {
    if (!this.followedNow.has(topic)) return false;
    this.calls.push(`followNow ${topic}`);
    return true;
  }
  topicName(topic: string): string {
    return topic;
  }
  async joinPresence(_conn: Socket, topic: string): Promise<void> {
    this.calls.push(`presence ${topic}`);
  }
  leave(_conn: Socket, topic: string): void {
    this.calls.push(`leave ${topic}`);
  }
  async publish(topic: string, input: PublishInput): Promise<PublishResult> {
    if (this.publishError !== null) throw this.publishError;
    this.calls.push(`publish ${topic} ${JSON.stringify(input.data)}`);
    return { seq: ++this.seq, epoch: "e", duplicate: false };
  }
  async members(): Promise<PresenceMember[]> {
    return [{ user: alice, connections: 1 }];
  }
  noteAuthFailure(reason: string): void {
    this.authFailures.push(reason);
  }
}

class FakeSocket {
  readonly frames: Record<string, unknown>[] = [];
  closedWith: [number, string] | null = null;
  readonly subscribed = new Set<string>();
  send(frame: string): number {
    this.frames.push(JSON.parse(frame));
    return frame.length;
  }
  close(code: number, reason: string): void {
    this.closedWith = [code, reason];
  }
  subscribe(topic: string): void {
    this.subscribed.add(topic);
  }
  unsubscribe(topic: string): void {
    this.subscribed.delete(topic);
  }
  pause(): void {}
  resume(): void {}
  terminate(): void {}
  getBufferedAmount(): number {
    return 0;
  }
}

const open: Connection[] = [];

function connect(identity: Identity | null, host = new FakeHost()) {
  const conn = new Connection(host, { id: "c1", ip: "127.0.0.1", identity, retireAt: null });
  const ws = new FakeSocket();
  conn.opened(ws as unknown as ServerWebSocket<SocketData>);
  open.push(conn);
  /** Sends a frame and waits until the connection handled it. */
  const send = async (frame: unknown) => {
    conn.received(typeof frame === "string" ? frame : JSON.stringify(frame));
    await Bun.sleep(5);
  };
  return { conn, ws, host, send };
}

afterEach(() => {
  for (const conn of open.splice(0)) conn.closed();
});

describe("Connection", () => {
  test("a socket authenticated at the upgrade joins its inbox, then gets welcome", async () => {
    const { ws, host } = connect(cookie);
    await Bun.sleep(5);
    expect(ws.frames).toEqual([{ type: "welcome", user: alice, connectionId: "c1", instance: "i-1", region: "test" }]);
    expect(host.calls).toEqual(["follow user:alice", "opened cookie"]);
  });

  test("when the inbox is already followed here, welcome is sent inside open (same write as the 101)", () => {
    const host = new FakeHost();
    host.followedNow.add("user:alice");
    const { ws } = connect(cookie, host);
    expect(ws.frames).toEqual([{ type: "welcome", user: alice, connectionId: "c1", instance: "i-1", region: "test" }]);
    expect(host.calls).toEqual(["followNow user:alice", "opened cookie"]);
  });

  test("a welcome that throws inside open closes the socket with 1011, as a failed queued job", () => {
    const host = new FakeHost();
    host.followedNow.add("user:alice");
    host.opened = () => {
      throw new Error("boom");
    };
    const { ws } = connect(cookie, host);
    expect(ws.closedWith).toEqual([Close.internal, "internal error"]);
  });

  test("first-message auth: a good token is admitted and welcomed; the socket counts as token", async () => {
    const { ws, host, send } = connect(null);
    await send({ type: "auth", token: "good" });
    expect(ws.frames.map((f) => f.type)).toEqual(["welcome"]);
    expect(host.calls).toEqual(["admit alice", "follow user:alice", "opened token"]);
  });

  test("first-message auth: a bad token closes 4001, anything else first 1008, a full user 1013", async () => {
    const bad = connect(null);
    await bad.send({ type: "auth", token: "forged" });
    expect(bad.ws.closedWith).toEqual([Close.unauthorized, "invalid or expired token"]);
    const other = connect(null);
    await other.send({ type: "ping" });
    expect(other.ws.closedWith?.[0]).toBe(Close.policy);
    const host = new FakeHost();
    host.userFull = true;
    const full = connect(null, host);
    await full.send({ type: "auth", token: "good" });
    expect(full.ws.closedWith?.[0]).toBe(Close.overloaded);
    expect([...bad.host.authFailures, ...other.host.authFailures]).toEqual(["bad_token", "protocol"]);
  });

  test("no auth frame within AUTH_TIMEOUT_MS closes 4002", async () => {
    const host = new FakeHost();
    (host.config as { authTimeoutMs: number }).authTimeoutMs = 20;
    const { ws } = connect(null, host);
    await Bun.sleep(50);
    expect(ws.closedWith?.[0]).toBe(Close.authTimeout);
    expect(host.authFailures).toEqual(["timeout"]);
  });

  test("subscribe writes presence first, then follows the topic and acks; unsubscribe leaves", async () => {
    const { ws, host, send } = connect(cookie);
    await send({ type: "subscribe", topic: "room:a", ref: 1 });
    await send({ type: "subscribe", topic: "room:b", ref: 2, since: { seq: 3, epoch: "e" } });
    await send({ type: "unsubscribe", topic: "room:a", ref: 3 });
    expect(ws.frames.slice(1)).toEqual([
      { type: "ack", ref: 1, topic: "room:a", seq: 7, epoch: "e", recovered: false },
      { type: "ack", ref: 2, topic: "room:b", seq: 7, epoch: "e", recovered: true },
      { type: "ack", ref: 3, topic: "room:a" },
    ]);
    expect(host.calls.slice(2)).toEqual(["presence room:a", "follow room:a", "presence room:b", "follow room:b", "leave room:a"]);
  });

  test("frames are handled one at a time in arrival order, even when one waits", async () => {
    const host = new FakeHost();
    const { ws, send } = connect(cookie, host);
    await Bun.sleep(5);
    host.followMs = 30;
    await send({ type: "subscribe", topic: "room:a", ref: 1 });
    await send({ type: "ping", ref: 2 });
    await Bun.sleep(50);
    expect(ws.frames.slice(1).map((f) => `${f.type} ${f.ref}`)).toEqual(["ack 1", "pong 2"]);
  });

  test("publish acks with the broker's seq; a broker failure is an error frame, the socket stays", async () => {
    const { ws, host, send } = connect(cookie);
    await send({ type: "publish", topic: "room:a", data: { n: 1 }, ref: 1 });
    host.publishError = new SwitchboardError(ErrorCode.unavailable, "the broker is unreachable; nothing was published, retry");
    await send({ type: "publish", topic: "room:a", data: 2, ref: 2 });
    host.publishError = new Error("boom");
    await send({ type: "publish", topic: "room:a", data: 3, ref: 3 });
    expect(ws.frames.slice(1)).toEqual([
      { type: "ack", ref: 1, topic: "room:a", seq: 1, epoch: "e" },
      { type: "error", ref: 2, code: "unavailable", message: "the broker is unreachable; nothing was published, retry" },
      { type: "error", ref: 3, code: "internal", message: "internal error" },
    ]);
    expect(ws.closedWith).toBeNull();
  });

  test("the ack's text is the JSON of {type, ref?, topic, seq?, epoch?}, byte for byte", () => {
    const cases: [number | undefined, string, PublishResult | null][] = [
      [1, "room:a", { seq: 7, epoch: "e1", duplicate: false }],
      [undefined, 'room:"é\u2028', { seq: 2 ** 53 - 1, epoch: "ff", duplicate: true }],
      [0, "typing:x", null],
      [undefined, "typing:x", null],
    ];
    for (const [ref, topic, result] of cases) {
      const expected = JSON.stringify(result === null ? { type: "ack", ref, topic } : { type: "ack", ref, topic, seq: result.seq, epoch: result.epoch });
      expect(ackFrame(ref, topic, result)).toBe(expected);
    }
  });

  test("bad frames get a coded error; forbidden topics are refused before the host is asked", async () => {
    const { ws, host, send } = connect(cookie);
    await send("{not json");
    await send({ type: "nope", ref: 4 });
    await send({ type: "subscribe", topic: "secret:x", ref: 5 });
    await send({ type: "publish", topic: "broadcast:all", data: 1, ref: 6 });
    await send({ type: "auth", token: "good", ref: 7 });
    expect(ws.frames.slice(1).map((f) => `${f.ref} ${f.code}`)).toEqual(["undefined bad_request", "4 bad_request", "5 forbidden", "6 forbidden", "7 bad_request"]);
    expect(host.calls.slice(2)).toEqual([]);
  });

  test("presence answers the host's members", async () => {
    const { ws, send } = connect(cookie);
    await send({ type: "presence", topic: "room:a", ref: 9 });
    expect(ws.frames[1]).toEqual({ type: "presence", ref: 9, topic: "room:a", members: [{ user: alice, connections: 1 }] });
  });

  test("a binary frame closes 1003; past the burst frames are refused with rate_limited", async () => {
    const binary = connect(cookie);
    binary.conn.received(Buffer.from("x"));
    expect(binary.ws.closedWith?.[0]).toBe(Close.unsupportedData);
    const host = new FakeHost();
    Object.assign(host.config, { rateLimitPerS: 1, rateLimitBurst: 2 });
    const { ws, send } = connect(cookie, host);
    for (let ref = 1; ref <= 3; ref++) await send({ type: "ping", ref });
    expect(ws.frames.slice(1).map((f) => `${f.type} ${f.ref}`)).toEqual(["pong 1", "pong 2", "error 3"]);
    expect(ws.frames[3]!.code).toBe("rate_limited");
  });

  test("when Bun reports the socket closed, it is forgotten and leaves every topic", async () => {
    const { conn, host, send } = connect(cookie);
    await send({ type: "subscribe", topic: "room:a", ref: 1 });
    conn.closed();
    expect(host.calls.slice(-3)).toEqual(["forget", "leave user:alice", "leave room:a"]);
    expect(conn.isOpen).toBe(false);
  });
});
