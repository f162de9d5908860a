/**
 * The SDK must not amplify a reconnect storm (issue 17): a server that accepts and then closes at
 * once (1011 internal error, 1013 overloaded) is retried with a growing backoff, because only a
 * connection that stayed open `reconnect.stableMs` resets the attempt counter — while a machine
 * that drains (1012) after a working connection is still left promptly, jittered.
 * Driven from the outside against a real WebSocket server that does exactly that.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { ClientOptions } from "../src/client/index.ts";
import { scriptedServer, type ScriptedServer } from "./support/scripted-server.ts";
import { recordedClient, waitFor, type Recorder } from "./support/sdk.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function serve(...args: Parameters<typeof scriptedServer>): ScriptedServer {
  const s = scriptedServer(...args);
  cleanup.push(() => s.stop());
  return s;
}

function client(url: string, reconnect: Partial<NonNullable<ClientOptions["reconnect"]>>, random = () => 0.999): Recorder {
  const r = recordedClient({ url, random, reconnect: { baseMs: 20, capMs: 5000, restartJitterMs: 300, overloadedMinMs: 100, stableMs: 1000, ...reconnect } });
  cleanup.push(() => r.client.close());
  return r;
}

const reconnects = (r: Recorder) => r.events.filter((e) => e.name === "reconnecting").map((e) => e.payload as { delay: number; attempt: number; code: number });

describe("a server that accepts and closes at once", () => {
  test.each([
    [1011, 0],
    [1013, 100],
  ])("closing with %i: every retry waits longer (attempts 1, 2, 3, …), the counter never resets at welcome", async (code, floor) => {
    const server = serve({
      onOpen(peer) {
        peer.welcome();
        peer.close(code, "closing at once");
      },
    });
    const r = client(server.url, {});
    await waitFor(() => reconnects(r).length >= 6, 5000, "six reconnects");
    r.client.close();
    const got = reconnects(r).slice(0, 6);
    expect(got.map((g) => g.attempt)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(got.map((g) => g.code)).toEqual(Array(6).fill(code));
    // random() = 0.999: each delay is the top of its window, floor + 20·2^(n-1) ms.
    expect(got.map((g) => g.delay)).toEqual([20, 40, 80, 160, 320, 639].map((d) => floor + d));
    expect(r.count("open")).toBeGreaterThanOrEqual(6); // each attempt was welcomed
    // The server saw the growing gaps too, not a retry every few milliseconds.
    const gaps = server.opens.slice(1, 6).map((t, i) => t - server.opens[i]!);
    for (const [i, gap] of gaps.entries()) expect(gap).toBeGreaterThanOrEqual(got[i]!.delay - 5);
  }, 15_000);

  test("over 1.5 s such a server sees a handful of opens, not one every few milliseconds", async () => {
    const server = serve({
      onOpen(peer) {
        peer.welcome();
        peer.close(1011, "closing at once");
      },
    });
    client(server.url, { baseMs: 20, capMs: 5000 }, () => 0.5);
    await Bun.sleep(1500);
    // Resetting at welcome, every retry would wait ~10 ms (half of 20): well over 50 opens.
    // Growing: 10 + 20 + 40 + 80 + 160 + 320 + 640 ms → at most 8 opens.
    console.log(`accept-and-close server: ${server.opens.length} opens in 1.5 s`);
    expect(server.opens.length).toBeLessThanOrEqual(8);
    expect(server.opens.length).toBeGreaterThanOrEqual(4);
  }, 10_000);
});

describe("a connection that stays up counts as working", () => {
  test("after reconnect.stableMs open, the next close starts again from attempt 1 with the first backoff window", async () => {
    let n = 0;
    const server = serve({
      onOpen(peer) {
        peer.welcome();
        if (n++ < 3) peer.close(1011, "closing at once"); // three quick failures, then a server that holds
      },
    });
    const r = client(server.url, { stableMs: 300 });
    await waitFor(() => r.count("open") === 4, 3000, "the fourth connection");
    expect(reconnects(r).map((g) => g.attempt)).toEqual([1, 2, 3]);
    await Bun.sleep(400); // longer than stableMs
    server.peers[3]!.close(1011, "later");
    await waitFor(() => reconnects(r).length === 4, 3000, "the reconnect after a stable connection");
    expect(reconnects(r)[3]).toEqual({ attempt: 1, delay: 20, code: 1011 });
    await waitFor(() => r.count("connecting") === 5, 3000, "the next attempt");
    expect(r.last("connecting")).toEqual({ attempt: 1 });
  }, 10_000);

  test("a closed connection shorter than stableMs keeps the count: attempt 4 after three quick failures and a short one", async () => {
    let n = 0;
    const server = serve({
      onOpen(peer) {
        peer.welcome();
        if (n++ < 3) peer.close(1011, "closing at once");
      },
    });
    const r = client(server.url, { stableMs: 2000 });
    await waitFor(() => r.count("open") === 4, 3000, "the fourth connection");
    await Bun.sleep(100);
    server.peers[3]!.close(1011, "soon");
    await waitFor(() => reconnects(r).length === 4, 3000, "the fourth reconnect");
    expect(reconnects(r)[3]).toEqual({ attempt: 4, delay: 160, code: 1011 });
  }, 10_000);
});

describe("1012 stays prompt", () => {
  test("a machine that drains after a working connection is left within restartJitterMs, jittered", async () => {
    const server = serve();
    const r = client(server.url, { stableMs: 200, restartJitterMs: 300 }, () => 0.5);
    await waitFor(() => r.count("open") === 1, 3000, "open");
    await Bun.sleep(300);
    server.peers[0]!.close(1012, "server restarting");
    await waitFor(() => r.count("open") === 2, 3000, "reopened");
    expect(reconnects(r)).toEqual([{ attempt: 1, delay: 150, code: 1012 }]); // half of restartJitterMs
    const gap = server.opens[1]! - server.opens[0]!;
    expect(gap).toBeGreaterThan(300 + 150 - 5);
  }, 10_000);

  test("a server that accepts and restarts at once (1012 in a loop) is not retried within the jitter window forever", async () => {
    const server = serve({
      onOpen(peer) {
        peer.welcome();
        peer.close(1012, "server restarting");
      },
    });
    const r = client(server.url, { baseMs: 20, restartJitterMs: 100, stableMs: 1000 });
    await waitFor(() => reconnects(r).length >= 8, 8000, "eight reconnects");
    r.client.close();
    // Spread over max(restartJitterMs, backoff ceiling): 100 until the backoff outgrows it.
    expect(reconnects(r).slice(0, 8).map((g) => g.delay)).toEqual([100, 100, 100, 160, 320, 639, 1279, 2557]);
  }, 15_000);
});

describe("a resubscription refused for a while", () => {
  test("`unavailable` twice after a reconnect: sent again on the same socket with the same since, resumed, never ended", async () => {
    let refusals = 0;
    const server = serve({
      onFrame(peer, f) {
        if (peer.index === 1 && f.type === "subscribe" && refusals < 2) {
          refusals++;
          peer.send({ type: "error", ref: f.ref, code: "unavailable", message: "history read timed out" });
          return true;
        }
      },
    });
    const r = client(server.url, {}, () => 0.5);
    const recovered: boolean[] = [];
    const errors: unknown[] = [];
    await r.client.subscribe("room:storm", { onMessage: () => {}, onRecovered: (ok) => recovered.push(ok), onError: (e) => errors.push(e) });
    server.publish("room:storm", "before");
    server.peers[0]!.close(1012, "server restarting");

    const second = await server.waitPeers(2);
    await waitFor(() => second.frames.filter((f) => f.type === "subscribe").length === 3, 5000, "two retries");
    const subscribes = second.frames.filter((f) => f.type === "subscribe");
    for (const s of subscribes) expect(s).toMatchObject({ topic: "room:storm", since: { seq: 1, epoch: expect.any(String) } });
    await waitFor(() => recovered.length === 1, 2000, "resumed");
    expect(recovered).toEqual([true]);
    expect(errors).toEqual([]);
    expect(r.client.topics).toEqual(["room:storm"]);
    expect(server.peers.length).toBe(2); // the same socket all along
    server.publish("room:storm", "after");
    await waitFor(() => second.topics.has("room:storm"), 2000, "subscribed on the server");
  });

  test("a refusal that is not temporary still ends the subscription with onError", async () => {
    const server = serve({
      onFrame(peer, f) {
        if (peer.index === 1 && f.type === "subscribe") {
          peer.send({ type: "error", ref: f.ref, code: "not_found", message: "no such topic" });
          return true;
        }
      },
    });
    const r = client(server.url, {});
    const errors: { code: string }[] = [];
    await r.client.subscribe("room:gone", { onMessage: () => {}, onError: (e) => errors.push(e) });
    server.peers[0]!.close(1012, "server restarting");
    await waitFor(() => errors.length === 1, 5000, "onError");
    expect(errors[0]!.code).toBe("not_found");
    expect(r.client.topics).toEqual([]);
    await Bun.sleep(300);
    expect(server.peers[1]!.frames.filter((f) => f.type === "subscribe").length).toBe(1);
  });

  test("a reconnect while a retry waits sends one subscribe on the new socket, not two", async () => {
    const server = serve({
      onFrame(peer, f) {
        if (peer.index === 1 && f.type === "subscribe") {
          peer.send({ type: "error", ref: f.ref, code: "unavailable", message: "busy" });
          peer.close(1012, "server restarting");
          return true;
        }
      },
    });
    const r = client(server.url, {}, () => 0.999);
    await r.client.subscribe("room:x", () => {});
    server.peers[0]!.close(1012, "server restarting");
    const third = await server.waitPeers(3, 5000);
    await third.waitFrame((f) => f.type === "subscribe");
    await Bun.sleep(1200); // past the retry's delay (attempt 0: up to 500 ms)
    expect(third.frames.filter((f) => f.type === "subscribe").length).toBe(1);
    expect(r.client.topics).toEqual(["room:x"]);
  });
});
