/**
 * SPEC §3 "Limits and membership", draining: on SIGTERM or SIGINT `/readyz` answers 503 at once,
 * new upgrades get 503, open sockets are closed with 1012 spread over DRAIN_MS, and the process
 * exits 0.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { upgradeStatus } from "./support/raw-ws.ts";
import { session, startServer, type TestServer, killAllServers } from "./support/server.ts";

const DRAIN_MS = 1000;
const servers: TestServer[] = [];
const clients = new Set<TestClient>();

afterAll(async () => {
  await closeAll(clients);
  for (const s of servers) s.kill();
  killAllServers();
});

async function drainScenario(signal: NodeJS.Signals, sockets: number) {
  const server = await startServer({ DRAIN_MS: String(DRAIN_MS) });
  servers.push(server);
  expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  const users = ["alice", "bob", "carol"];
  const open: TestClient[] = [];
  for (let i = 0; i < sockets; i++) {
    const s = await session(server, users[i % 3]!);
    const c = await TestClient.connect(server.wsUrl, { cookie: s.cookie });
    clients.add(c);
    open.push(c);
  }
  const exited = server.proc.exited;
  const signalledAt = Date.now();
  server.proc.kill(signal);
  await Bun.sleep(50); // let the signal reach the process's event loop

  const ready = await fetch(`${server.url}/readyz`);
  await ready.arrayBuffer();
  expect(ready.status).toBe(503);
  const s = await session(server, "alice");
  expect((await upgradeStatus(server.wsUrl, { Cookie: s.cookie })).status).toBe(503);

  const closes = await Promise.all(open.map((c) => c.waitClose(DRAIN_MS + 3000)));
  const closedAt = open.map((c) => c.createdAt + c.close!.at - signalledAt);
  for (const cl of closes) expect(cl.code).toBe(1012);
  const code = await Promise.race([exited, Bun.sleep(DRAIN_MS + 5000).then(() => "still running" as const)]);
  expect(code).toBe(0);
  return { closedAt, exitedAfter: Date.now() - signalledAt };
}

describe("draining", () => {
  test("SIGTERM: /readyz 503 at once, upgrades 503, every socket gets 1012 spread over DRAIN_MS, exit 0", async () => {
    const { closedAt } = await drainScenario("SIGTERM", 12);
    const first = Math.min(...closedAt);
    const last = Math.max(...closedAt);
    console.log(`drain: 12 sockets closed between ${first} and ${last} ms after SIGTERM (DRAIN_MS=${DRAIN_MS})`);
    expect(last - first).toBeGreaterThanOrEqual(DRAIN_MS * 0.4); // spread out, not all at once
    expect(last).toBeLessThanOrEqual(DRAIN_MS + 1000);
  }, 30_000);

  test("SIGINT (Fly's default kill signal) drains the same way", async () => {
    await drainScenario("SIGINT", 3);
  }, 30_000);
});
