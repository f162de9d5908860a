/**
 * Half-open peers (and, alongside, slowloris at the HTTP layer). A client whose link dies without a FIN or RST (the test
 * proxy black-holes it: a laptop lid closed, a NAT that forgot the flow) is found by Bun's
 * WebSocket pings and freed within the idle timeout, and its presence entry leaves: the others
 * see `presence.leave`. A bystander that is just as idle, but alive, answers the pings and stays.
 * Meanwhile 200 connections drip an endless request head; Bun cuts them at its HTTP timeout.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { TestClient, closeAll } from "../support/client.ts";
import { startProxy, type TcpProxy } from "../support/proxy.ts";
import { session, startServer, type TestServer } from "../support/server.ts";
import { metric, openSockets } from "../support/metrics.ts";

/**
 * Bun rounds 1–7 up to 8 s. It pings a socket that has been silent for part of the idle timeout
 * and closes it when nothing (not even the pong) arrived within the whole of it: measured
 * ~7.7 s after the link went dark. 2 s of slack for timer granularity.
 */
const IDLE_TIMEOUT_S = 8;
const FREED_WITHIN_MS = IDLE_TIMEOUT_S * 1000 + 2000;

/** Classic slowloris: request heads that never end, one byte dripped every 2 s to look alive. */
const HEAD_DRIPPERS = 200;
/** Bun's HTTP idle timeout is 10 s; a head still unfinished was cut at ~12 s in practice. */
const HEAD_CUT_WITHIN_MS = 16_000;

let server: TestServer;
let proxy: TcpProxy;
const clients = new Set<TestClient>();
const drippers: { socket: Socket<undefined>; endedAt: number }[] = [];
let drippersStartedAt = 0;
let drip: ReturnType<typeof setInterval> | undefined;

beforeAll(async () => {
  server = await startServer({ IDLE_TIMEOUT_S: String(IDLE_TIMEOUT_S) });
  proxy = await startProxy({ upstreams: [server.port] });
  for (const user of ["alice", "bob"]) await session(server, user);
  // Started now, checked in the last test: they run alongside the half-open test.
  drippersStartedAt = Date.now();
  for (let i = 0; i < HEAD_DRIPPERS; i++) {
    const entry = { socket: null as unknown as Socket<undefined>, endedAt: 0 };
    const end = () => {
      entry.endedAt ||= Date.now();
    };
    entry.socket = await Bun.connect({ hostname: "127.0.0.1", port: server.port, socket: { data() {}, close: end, end, error: end } });
    entry.socket.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`);
    drippers.push(entry);
  }
  drip = setInterval(() => {
    for (const d of drippers) if (d.endedAt === 0) d.socket.write("X-Slow: 1\r\n");
  }, 2000);
}, 30_000);

afterAll(async () => {
  clearInterval(drip);
  for (const d of drippers) d.socket.terminate();
  await closeAll(clients);
  await proxy?.close();
  server?.kill();
});

async function connect(url: string, user: string): Promise<TestClient> {
  const c = await TestClient.connect(url, { cookie: (await session(server, user)).cookie });
  clients.add(c);
  return c;
}

describe("a peer that vanishes without a FIN", () => {
  test(`is freed within ${FREED_WITHIN_MS / 1000} s (IDLE_TIMEOUT_S=${IDLE_TIMEOUT_S}) and leaves presence; an idle but live bystander stays`, async () => {
    const bob = await connect(server.wsUrl, "bob"); // direct, idle from here on except for pings
    await bob.subscribe("room:half-open");
    const alice = await connect(proxy.url("/ws"), "alice");
    await alice.subscribe("room:half-open");
    const joined = await bob.next((f) => f.type === "presence.join" && f.user.id === "alice", 3000, "alice's presence.join");
    expect(joined.topic).toBe("room:half-open");
    expect((await bob.request({ type: "presence", topic: "room:half-open" })).members.map((m: { user: { id: string } }) => m.user.id).sort()).toEqual(["alice", "bob"]);
    const sockets = await openSockets(server);
    const idleClosesBefore = await metric(server, "switchboard_connections_closed_total", { code: "1006" });

    const lostAt = Date.now();
    expect(proxy.blackhole()).toBe(1);

    const left = await bob.next((f) => f.type === "presence.leave" && f.user.id === "alice", FREED_WITHIN_MS + 1000, "alice's presence.leave");
    const after = Date.now() - lostAt;
    console.log(`half-open: alice freed and presence.leave seen ${after} ms after her link went dark (bound ${FREED_WITHIN_MS} ms)`);
    expect(left.topic).toBe("room:half-open");
    expect(after).toBeLessThan(FREED_WITHIN_MS);
    expect(await openSockets(server)).toBe(sockets - 1);
    expect((await metric(server, "switchboard_connections_closed_total", { code: "1006" })) - idleClosesBefore).toBe(1);
    // The victim's client still believes it is connected: nothing reached it, which is the point.
    expect(alice.close).toBeNull();

    // bob has been as idle as alice since the blackhole; let that run past the idle timeout.
    // He answers the server's pings (any client does), so he is still here and still served.
    await Bun.sleep(Math.max(0, lostAt + (IDLE_TIMEOUT_S + 3) * 1000 - Date.now()));
    expect(bob.close).toBeNull();
    const members = (await bob.request({ type: "presence", topic: "room:half-open" })).members.map((m: { user: { id: string } }) => m.user.id);
    expect(members).toEqual(["bob"]);
    const ack = await bob.publish("room:half-open", "still here");
    expect((await bob.waitMessages("room:half-open", 1)).at(-1)!.seq).toBe(ack.seq);
  }, FREED_WITHIN_MS + 15_000);
});

describe("a peer that never finishes its request head (classic slowloris)", () => {
  test(`${HEAD_DRIPPERS} request heads dripped a header every 2 s are cut by the server within ${HEAD_CUT_WITHIN_MS / 1000} s; none ever became a socket`, async () => {
    const deadline = drippersStartedAt + HEAD_CUT_WITHIN_MS;
    while (Date.now() < deadline && drippers.some((d) => d.endedAt === 0)) await Bun.sleep(100);
    const open = drippers.filter((d) => d.endedAt === 0).length;
    const lasted = drippers.map((d) => d.endedAt - drippersStartedAt);
    console.log(`slow heads: ${HEAD_DRIPPERS - open} of ${HEAD_DRIPPERS} cut after ${Math.min(...lasted)}–${Math.max(...lasted)} ms`);
    expect(open).toBe(0);
    // They never reached the WebSocket layer, and everyone else was served meanwhile (above).
    expect(await metric(server, "switchboard_upgrades_rejected_total")).toBe(0);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  }, HEAD_CUT_WITHIN_MS + 5000);
});
