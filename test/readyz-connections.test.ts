/**
 * SPEC §2 `/readyz`: 200 when the process can serve. On Redis a cookie upgrade reads its session's
 * revocations over the process's auth-reads connection: while that connection is not up, the
 * process answers 503 (a load balancer sends it no socket), `/healthz` answers at once, and once
 * `/readyz` says 200 the upgrades sent to it are welcomed — at start-up and after that connection
 * was lost, while the broker's own connections stayed up. The same for the data connection (tickets,
 * presence, logouts, the deployment registry).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { startRedisGate, type RedisGate } from "./support/redis-gate.ts";
import { CLUSTER_ENV } from "./support/cluster.ts";
import { getTicket, loginSession, startServer, type TestServer } from "./support/server.ts";
import { TestClient, closeAll } from "./support/client.ts";

/** One Redis, the gate in front of it, and the process under test behind the gate. */
let redis: TestRedis, gate: RedisGate, server: TestServer;
const clients = new Set<TestClient>();

beforeAll(async () => {
  redis = await startRedis();
  gate = await startRedisGate(redis.port);
}, 30_000);
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  await gate?.close();
  await redis?.stop();
});

async function status(path: string): Promise<number> {
  const res = await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(1000) });
  await res.arrayBuffer();
  return res.status;
}

/** Polls `/readyz` for `ms`: every answer must be 503, and `/healthz` 200 at once beside it. */
async function unreadyFor(ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const started = performance.now();
    expect(await status("/healthz")).toBe(200);
    expect(performance.now() - started).toBeLessThan(500);
    expect(await status("/readyz")).toBe(503);
    await Bun.sleep(20);
  }
}

async function untilReady(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await status("/readyz")) !== 200) {
    if (Date.now() > deadline) throw new Error(`/readyz not 200 within ${timeoutMs} ms; gate sees ${JSON.stringify(gate.names())}`);
    await Bun.sleep(5);
  }
}

/** Cuts the connection whose name contains `word` and keeps it out: `/readyz` must turn 503 within 2 s and stay so for `ms`. */
async function cut(word: string, ms: number): Promise<void> {
  gate.hold(word);
  const deadline = Date.now() + 2000;
  while ((await status("/readyz")) !== 503) {
    if (Date.now() > deadline) throw new Error(`/readyz still 200 2 s after the ${word} connection was cut; gate sees ${JSON.stringify(gate.names())}`);
    await Bun.sleep(10);
  }
  await unreadyFor(ms);
}

/** Lets the connection back in: `/readyz` must answer 200 again within 5 s. */
async function restore(word: string): Promise<void> {
  gate.release(word);
  await untilReady(5000);
}

/** Sessions this process never checked: each upgrade must read its revocations from Redis. */
async function freshCookies(n: number): Promise<string[]> {
  const cookies: string[] = [];
  for (let i = 0; i < n; i++) cookies.push((await loginSession(server, ["alice", "bob", "carol"][i % 3]!)).cookie);
  return cookies;
}

async function upgradesRightAway(cookies: string[]): Promise<string[]> {
  return Promise.all(
    cookies.map((cookie) =>
      TestClient.connect(server.wsUrl, { cookie }, 5000).then(
        (client) => (clients.add(client), "welcome"),
        (error: Error) => error.message,
      ),
    ),
  );
}

describe("/readyz waits for every Redis connection a handshake needs", () => {
  test("at start-up: 503 while it cannot connect (healthz 200), then the upgrades right after 200 are welcomed", async () => {
    gate.hold("auth-reads");
    server = await startServer({ ...CLUSTER_ENV, REDIS_URL: gate.url, INSTANCE_ID: "ready-a" });
    // Logins go over the data connection, which is up: the process is otherwise ready.
    const cookies = await freshCookies(6);
    await unreadyFor(1500);
    await restore("auth-reads");
    expect(await upgradesRightAway(cookies)).toEqual(cookies.map(() => "welcome"));
  }, 30_000);

  test("after that connection was lost: 503 until it is back (the broker's stayed up), then upgrades are welcomed", async () => {
    await untilReady(5000);
    const cookies = await freshCookies(6);
    await cut("auth-reads", 1500);
    await restore("auth-reads");
    expect(await upgradesRightAway(cookies)).toEqual(cookies.map(() => "welcome"));
  }, 30_000);

  test("the data connection too (tickets, presence, logouts): 503 while it is lost, then a ticket upgrade is welcomed", async () => {
    await untilReady(5000);
    const { cookie } = await loginSession(server, "alice");
    await cut(":data", 1000);
    await restore(":data");
    const ticket = await getTicket(server, cookie);
    const client = await TestClient.connect(`${server.wsUrl}?ticket=${ticket}`, {}, 5000);
    clients.add(client);
    expect(server.faults()).toEqual([]);
  }, 30_000);
});
