/**
 * Slowloris: 1,000 sockets upgrade and never authenticate (some stop in the
 * middle of a frame). Every one is closed with 4002 at the auth deadline and its slot is freed,
 * while legitimate clients connect and chat with normal latency throughout.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Op, RawPeer } from "../support/raw-ws.ts";
import { TestClient, closeAll } from "../support/client.ts";
import { session, startServer, type TestServer } from "../support/server.ts";
import { metric, openSockets } from "../support/metrics.ts";

const AUTH_TIMEOUT_MS = 2000;
const SOCKETS = 1000;
/** Latency bound for the legitimate clients' publish → delivery while the 1,000 sockets wait. */
const CHAT_P99_MS = 250;

let server: TestServer;
const peers: RawPeer[] = [];
const clients = new Set<TestClient>();

beforeAll(async () => {
  server = await startServer({ AUTH_TIMEOUT_MS: String(AUTH_TIMEOUT_MS), MAX_CONNECTIONS_PER_IP: String(SOCKETS + 100) });
  for (const user of ["alice", "bob"]) await session(server, user);
}, 30_000);

afterAll(async () => {
  for (const p of peers) p.destroy();
  await closeAll(clients);
  server?.kill();
});

async function connect(user: string): Promise<TestClient> {
  const c = await TestClient.connect(server.wsUrl, { cookie: (await session(server, user)).cookie });
  clients.add(c);
  return c;
}

describe("slowloris: sockets that never authenticate", () => {
  test(`${SOCKETS} silent sockets are all closed with 4002 at AUTH_TIMEOUT_MS (${AUTH_TIMEOUT_MS} ms) while others chat normally`, async () => {
    const failuresBefore = await metric(server, "switchboard_auth_failures_total", { reason: "timeout" });
    const alice = await connect("alice");
    const bob = await connect("bob");
    await bob.subscribe("room:legit");

    // Legitimate traffic all along: alice publishes every 20 ms, bob's delivery latency is measured.
    const latencies: number[] = [];
    let stop = false;
    const chat = (async () => {
      for (let n = 0; !stop && n < 1000; n++) {
        const sent = Date.now();
        await alice.publish("room:legit", { n, sent });
        await bob.waitMessages("room:legit", n + 1, 3000);
        latencies.push(Date.now() - sent);
        await Bun.sleep(20);
      }
    })();

    // The attack: 1,000 upgrades in waves of 100; every tenth one sends half a frame and stops.
    // Per peer: when its upgrade was asked (the server cannot arm its timer earlier) and when the
    // wave it belongs to had all opened (it cannot have been armed later).
    const askedAt: number[] = [];
    const openedAt: number[] = [];
    for (let wave = 0; wave < SOCKETS / 100; wave++) {
      const asked = Date.now();
      const batch = await Promise.all(Array.from({ length: 100 }, () => RawPeer.open(server.wsUrl, {}, 5000)));
      for (const p of batch) {
        expect(p.head.status).toBe(101);
        askedAt.push(asked);
        openedAt.push(Date.now());
        peers.push(p);
        if (peers.length % 10 === 0) p.send(Buffer.from([0x81, 0xfe, 0x03, 0xe8, 1, 2, 3, 4, 0x7b])); // 1000 bytes promised, 1 sent
      }
    }
    // A newcomer connecting in the middle of it is served at once.
    const carol = await connect("carol");
    expect((await carol.request({ type: "ping" })).type).toBe("pong");

    await Promise.all(peers.map((p) => p.closed(AUTH_TIMEOUT_MS + 5000)));
    stop = true;
    await chat;

    const codes = new Map<number | null, number>();
    for (const p of peers) codes.set(p.closeFrame?.code ?? null, (codes.get(p.closeFrame?.code ?? null) ?? 0) + 1);
    expect(Object.fromEntries(codes)).toEqual({ 4002: SOCKETS });
    // Closed at the deadline: not before it, and not long after (the connect waves took ~1 s).
    await Promise.all(peers.map((p) => p.until(() => p.ended, 3000, "the TCP end")));
    const endedAt = peers.map((p) => p.endedAt || Date.now());
    const ends = endedAt.map((at, i) => at - openedAt[i]!);
    expect(Math.min(...endedAt.map((at, i) => at - askedAt[i]!))).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS);
    expect(Math.max(...ends)).toBeLessThan(AUTH_TIMEOUT_MS + 1500);
    // None of them ever got a welcome or any other frame than the close.
    expect(peers.every((p) => p.frames.every((f) => f.opcode === Op.close))).toBe(true);

    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)]!;
    console.log(`slowloris: ${SOCKETS} sockets closed 4002 after ${Math.min(...ends)}–${Math.max(...ends)} ms; chat: ${latencies.length} messages, p50 ${latencies[Math.floor(latencies.length / 2)]} ms, p99 ${p99} ms`);
    expect(latencies.length).toBeGreaterThan(50);
    expect(p99).toBeLessThan(CHAT_P99_MS);
    expect(alice.close).toBeNull();
    expect(bob.close).toBeNull();
    expect((await metric(server, "switchboard_auth_failures_total", { reason: "timeout" })) - failuresBefore).toBe(SOCKETS);
  }, 30_000);

  test("their slots are freed: only the legitimate sockets remain, and the address can connect again", async () => {
    let open = await openSockets(server);
    for (let i = 0; i < 40 && open !== clients.size; i++) {
      await Bun.sleep(50);
      open = await openSockets(server);
    }
    expect(open).toBe(clients.size);
    const again = await connect("alice");
    expect((await again.request({ type: "ping" })).type).toBe("pong");
  });
});
