/**
 * The test proxy (test/support/proxy.ts) that fault and rolling-deploy tests stand on: it must
 * forward faithfully, balance round-robin, skip a refusing upstream, and fail in the two ways
 * it promises (black hole, drop).
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { startProxy, type TcpProxy } from "./proxy.ts";
import { freePort } from "./server.ts";

interface Echo {
  listener: TCPSocketListener<undefined>;
  port: number;
  closed: number;
  received: string;
}

/** An upstream that answers every chunk with `<name>:<chunk>`. */
function echo(name: string): Echo {
  const state: Echo = { listener: undefined as never, port: 0, closed: 0, received: "" };
  state.listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s, chunk) {
        state.received += new TextDecoder().decode(chunk);
        s.write(`${name}:${new TextDecoder().decode(chunk)}`);
      },
      close() {
        state.closed++;
      },
    },
  });
  state.port = state.listener.port;
  return state;
}

interface Peer {
  socket: Socket<undefined>;
  received: string;
  ended: boolean;
}

async function dial(port: number): Promise<Peer> {
  const peer: Peer = { socket: undefined as never, received: "", ended: false };
  peer.socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, chunk) {
        peer.received += new TextDecoder().decode(chunk);
      },
      close() {
        peer.ended = true;
      },
      end() {
        peer.ended = true;
      },
    },
  });
  return peer;
}

async function waitFor(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await Bun.sleep(10);
  }
}

const cleanup: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function track(proxy: TcpProxy, ...upstreams: Echo[]): void {
  cleanup.push(() => proxy.close());
  for (const u of upstreams) cleanup.push(() => u.listener.stop(true));
}

describe("test proxy", () => {
  test("forwards both ways, round-robin over upstreams, skipping one that refuses", async () => {
    const a = echo("a");
    const b = echo("b");
    const dead = freePort();
    const proxy = await startProxy({ upstreams: [a.port, dead, b.port] });
    track(proxy, a, b);
    const peers: Peer[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await dial(proxy.port);
      p.socket.write(`hi${i}`);
      await waitFor(() => p.received.length > 0);
      peers.push(p);
    }
    expect(peers.map((p) => p.received)).toEqual(["a:hi0", "b:hi1", "a:hi2", "b:hi3"]);
    expect(proxy.connections).toBe(4);
    expect(proxy.connectionsByUpstream()).toEqual(new Map([[a.port, 2], [b.port, 2]]));
    // A large write goes through whole (backpressure is respected, nothing is lost).
    const big = "x".repeat(2_000_000);
    peers[0]!.received = "";
    peers[0]!.socket.write(big);
    await waitFor(() => peers[0]!.received.replaceAll("a:", "").length >= big.length, 5000);
    expect(peers[0]!.received.replaceAll("a:", "").length).toBe(big.length);
    for (const p of peers) p.socket.end();
  });

  test("blackhole(): open connections go silent without closing; new ones work", async () => {
    const a = echo("a");
    const proxy = await startProxy({ upstreams: [a.port] });
    track(proxy, a);
    const old = await dial(proxy.port);
    old.socket.write("1");
    await waitFor(() => old.received === "a:1");
    expect(proxy.blackhole()).toBe(1);
    old.socket.write("2");
    await Bun.sleep(200);
    expect(old.received).toBe("a:1");
    expect(old.ended).toBe(false);
    expect(a.closed).toBe(0);
    const fresh = await dial(proxy.port);
    fresh.socket.write("3");
    await waitFor(() => fresh.received === "a:3");
    old.socket.end();
    fresh.socket.end();
  });

  test('blackhole("toClient"): requests still reach the upstream, its replies vanish', async () => {
    const a = echo("a");
    const proxy = await startProxy({ upstreams: [a.port] });
    track(proxy, a);
    const p = await dial(proxy.port);
    p.socket.write("1");
    await waitFor(() => p.received === "a:1");
    expect(proxy.blackhole("toClient")).toBe(1);
    p.socket.write("2");
    await waitFor(() => a.received === "12");
    await Bun.sleep(100);
    expect(p.received).toBe("a:1");
    expect(p.ended).toBe(false);
    p.socket.end();
  });

  test("dropAll() closes every connection at both ends; setUpstreams() redirects new ones", async () => {
    const a = echo("a");
    const b = echo("b");
    const proxy = await startProxy({ upstreams: [a.port] });
    track(proxy, a, b);
    const p1 = await dial(proxy.port);
    const p2 = await dial(proxy.port);
    p1.socket.write("x");
    p2.socket.write("y");
    await waitFor(() => p1.received !== "" && p2.received !== "");
    expect(proxy.dropAll()).toBe(2);
    await waitFor(() => p1.ended && p2.ended && a.closed === 2);
    proxy.setUpstreams([b.port]);
    const p3 = await dial(proxy.port);
    p3.socket.write("z");
    await waitFor(() => p3.received === "b:z");
    p3.socket.end();
  });

  test("with every upstream refusing, the client connection is closed", async () => {
    const proxy = await startProxy({ upstreams: [freePort()] });
    track(proxy);
    const p = await dial(proxy.port);
    await waitFor(() => p.ended);
    expect(proxy.connections).toBe(0);
  });
});
