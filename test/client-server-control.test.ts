/**
 * The SDK's share of SPEC §5, §6 and §8, against a scripted server (a real Bun.serve speaking the
 * new frames; their server side is built separately):
 * - §6 the server subscribes a socket (`subscribed`): the SDK tracks the topic's position, emits
 *   `subscribed`, and a reconnect resumes it with `since`; `unsubscribed`: tracking stops, no
 *   resubscription, an event; close 4003: no automatic reconnect, a `disconnected` event;
 * - §5 ephemeral topics: a publish ack without `seq`, messages without seq/epoch delivered as they
 *   come (no duplicate or gap judgement);
 * - §8 `limit_exceeded` rejects like every coded error.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { SwitchboardClientError, type ClientEvents, type Message } from "../src/client/index.ts";
import { scriptedServer, type Script, type ScriptedServer } from "./support/scripted-server.ts";
import { recordedClient, waitFor, type Recorder } from "./support/sdk.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function serve(script: Script = {}): ScriptedServer {
  const s = scriptedServer(script);
  cleanup.push(() => s.stop());
  return s;
}

function client(url: string): Recorder & { inbox: Message[] } {
  const r = recordedClient({ url, random: () => 0.5, reconnect: { baseMs: 20, capMs: 200, restartJitterMs: 50, overloadedMinMs: 50, stableMs: 1000 } });
  const inbox: Message[] = [];
  r.client.on("message", (m) => inbox.push(m));
  for (const name of ["subscribed", "unsubscribed", "disconnected"] as const) {
    r.client.on(name, (payload: ClientEvents[typeof name]) => r.events.push({ at: 0, name, payload }));
  }
  cleanup.push(() => r.client.close());
  return Object.assign(r, { inbox });
}

/** What the server does on POST /api/subscribe for this socket. */
function serverSubscribe(server: ScriptedServer, peerIndex: number, topic: string): void {
  const peer = server.peers[peerIndex]!;
  peer.topics.add(topic);
  const p = server.positions.get(topic) ?? { seq: 0, epoch: "e1" };
  server.positions.set(topic, p);
  peer.send({ type: "subscribed", topic, seq: p.seq, epoch: p.epoch });
}

describe("SPEC §6: the server subscribes and unsubscribes a socket", () => {
  test("subscribed: an event, messages as `message` events from that position, resumed with since after a reconnect", async () => {
    const server = serve();
    const r = client(server.url);
    await waitFor(() => r.client.state === "open", 2000, "open");
    server.publish("orders:42", "before"); // seq 1: before the server subscribed this socket
    serverSubscribe(server, 0, "orders:42");
    await waitFor(() => r.count("subscribed") === 1, 2000, "subscribed");
    expect(r.last("subscribed")).toEqual({ topic: "orders:42", seq: 1, epoch: "e1" });
    expect(r.client.topics).toEqual(["orders:42"]);
    server.publish("orders:42", "shipped");
    await waitFor(() => r.inbox.length === 1, 2000, "message");
    expect(r.inbox[0]).toMatchObject({ topic: "orders:42", seq: 2, data: "shipped" });

    server.peers[0]!.close(1012, "server restarting");
    const second = await server.waitPeers(2);
    const resub = await second.waitFrame((f) => f.type === "subscribe");
    expect(resub).toMatchObject({ topic: "orders:42", since: { seq: 2, epoch: "e1" } });
    server.publish("orders:42", "delivered");
    await waitFor(() => r.inbox.length === 2, 2000, "message after the reconnect");
    expect(r.inbox.map((m) => m.seq)).toEqual([2, 3]);
  });

  test("duplicates and gaps on a server-made subscription are handled like any other", async () => {
    const server = serve();
    const r = client(server.url);
    await waitFor(() => r.client.state === "open", 2000, "open");
    serverSubscribe(server, 0, "orders:7");
    const peer = server.peers[0]!;
    const msg = (seq: number) => ({ type: "message", topic: "orders:7", seq, epoch: "e1", from: "server", data: seq, ts: 1 });
    peer.send(msg(1));
    peer.send(msg(1));
    peer.send(msg(3)); // 2 is missing: the SDK resubscribes with since 1
    const repair = await peer.waitFrame((f) => f.type === "subscribe");
    expect(repair).toMatchObject({ topic: "orders:7", since: { seq: 1, epoch: "e1" } });
    expect(r.inbox.map((m) => m.seq)).toEqual([1]);
  });

  test("the application may take a server-made subscription over with subscribe(): its handler from then on", async () => {
    const server = serve();
    const r = client(server.url);
    await waitFor(() => r.client.state === "open", 2000, "open");
    serverSubscribe(server, 0, "orders:9");
    await waitFor(() => r.count("subscribed") === 1, 2000, "subscribed");
    const mine: unknown[] = [];
    const sub = await r.client.subscribe("orders:9", (m) => mine.push(m.data));
    expect(sub.position).toEqual({ seq: 0, epoch: "e1" });
    expect(sub.byServer).toBe(false);
    server.publish("orders:9", "x");
    await waitFor(() => mine.length === 1, 2000, "the handler's message");
    expect(r.inbox).toEqual([]);
    expect(server.peers[0]!.frames.filter((f) => f.type === "subscribe")).toEqual([]); // nothing sent
  });

  test("unsubscribed: an event, the subscription ends (onUnsubscribed), and a reconnect does not resubscribe it", async () => {
    const server = serve();
    const r = client(server.url);
    const ended: unknown[] = [];
    await r.client.subscribe("room:a", { onMessage: () => {}, onUnsubscribed: (info) => ended.push(info) });
    await r.client.subscribe("room:b", () => {});
    const peer = server.peers[0]!;
    peer.topics.delete("room:a");
    peer.send({ type: "unsubscribed", topic: "room:a", reason: "server" });
    await waitFor(() => r.count("unsubscribed") === 1, 2000, "unsubscribed");
    expect(r.last("unsubscribed")).toEqual({ topic: "room:a", reason: "server" });
    expect(ended).toEqual([{ topic: "room:a", reason: "server" }]);
    expect(r.client.topics).toEqual(["room:b"]);

    peer.close(1012, "server restarting");
    const second = await server.waitPeers(2);
    await second.waitFrame((f) => f.type === "subscribe");
    await Bun.sleep(50);
    expect(second.frames.filter((f) => f.type === "subscribe").map((f) => f.topic)).toEqual(["room:b"]);
    // The application may subscribe again: the server checks it as any subscribe.
    await r.client.subscribe("room:a", () => {});
    expect(r.client.topics.sort()).toEqual(["room:a", "room:b"]);
  });
});

describe("SPEC §6: close 4003, disconnected by the server", () => {
  test("no automatic reconnect; a disconnected event; pending requests reject with closed; connect() starts again", async () => {
    const server = serve({
      onFrame(_peer, f) {
        return f.type === "publish"; // never acknowledged: still pending at the 4003
      },
    });
    const r = client(server.url);
    await r.client.subscribe("room:a", () => {});
    const pending = r.client.publish("room:a", 1).catch((e: SwitchboardClientError) => e);
    await server.peers[0]!.waitFrame((f) => f.type === "publish");
    server.peers[0]!.close(4003, "disconnected by the server");
    await waitFor(() => r.count("disconnected") === 1, 2000, "disconnected");
    expect(r.last("disconnected")).toEqual({ code: 4003, reason: "disconnected by the server" });
    expect(r.last("closed")).toEqual({ code: 4003, reason: "disconnected by the server", reconnect: false });
    const error = await pending;
    expect(error).toBeInstanceOf(SwitchboardClientError);
    expect(error).toMatchObject({ code: "closed", message: "the server disconnected this client (4003 disconnected by the server)" });
    expect(r.client.state).toBe("closed");
    expect(r.count("unauthorized")).toBe(0);
    await Bun.sleep(300);
    expect(server.peers.length).toBe(1);
    expect(r.count("connecting")).toBe(1);

    r.client.connect();
    const second = await server.waitPeers(2);
    expect((await second.waitFrame((f) => f.type === "subscribe")).topic).toBe("room:a");
  });
});

describe("SPEC §5: ephemeral topics", () => {
  const ephemeral: Script = {
    onFrame(peer, f) {
      if (!f.topic?.startsWith("typing:")) return;
      if (f.type === "subscribe") peer.send({ type: "ack", ref: f.ref, topic: f.topic, recovered: false });
      else if (f.type === "publish") peer.send({ type: "ack", ref: f.ref });
      else return;
      return true;
    },
  };

  test("a publish is acknowledged without seq; messages without seq/epoch are all delivered as they come", async () => {
    const server = serve(ephemeral);
    const r = client(server.url);
    const got: Message[] = [];
    const sub = await r.client.subscribe("typing:room-a", (m) => got.push(m));
    expect(sub.position).toBeNull();
    const ack = await r.client.publish("typing:room-a", { typing: true });
    expect(ack).toEqual({ topic: "typing:room-a", seq: undefined, epoch: undefined, key: ack.key });
    const peer = server.peers[0]!;
    for (const data of ["a", "b", "b", "c"]) peer.send({ type: "message", topic: "typing:room-a", from: "bob", data, ts: 1 });
    await waitFor(() => got.length === 4, 2000, "four messages");
    expect(got.map((m) => m.data)).toEqual(["a", "b", "b", "c"]); // no duplicate judgement without seq
    expect(got[0]!.seq).toBeUndefined();
    expect(peer.frames.filter((f) => f.type === "subscribe").length).toBe(1); // no gap repair

    peer.close(1012, "server restarting");
    const second = await server.waitPeers(2);
    const resub = await second.waitFrame((f) => f.type === "subscribe");
    expect(resub.since).toBeUndefined(); // nothing to resume from
    expect(r.resyncs).toEqual([]);
  });
});

describe("SPEC §8: limit_exceeded", () => {
  test("rejects a subscribe and a publish with code limit_exceeded, like the other coded errors", async () => {
    const server = serve({
      onFrame(peer, f) {
        if (f.type !== "subscribe" && f.type !== "publish") return;
        peer.send({ type: "error", ref: f.ref, code: "limit_exceeded", message: "too many subscriptions" });
        return true;
      },
    });
    const r = client(server.url);
    const refused = await r.client.subscribe("room:257", () => {}).catch((e) => e);
    expect(refused).toBeInstanceOf(SwitchboardClientError);
    expect(refused).toMatchObject({ code: "limit_exceeded", topic: "room:257", message: "too many subscriptions", temporary: false });
    expect(await r.client.publish("room:new", 1).catch((e) => e.code)).toBe("limit_exceeded");
    expect(r.client.topics).toEqual([]);
    expect(r.client.state).toBe("open");
  });
});
