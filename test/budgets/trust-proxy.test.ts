/**
 * SPEC §8 TRUST_PROXY: `false` · `true` (the scheme from X-Forwarded-Proto, the client IP from the
 * last X-Forwarded-For hop) · `fly` (the client IP from Fly-Client-IP). A header the setting does
 * not name is never read. The client IP is observed through MAX_CONNECTIONS_PER_IP=1: a second
 * socket from the same address gets 429, one from another address 101.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RawPeer, upgradeStatus } from "../support/raw-ws.ts";
import { killAllServers, session, startServer, type TestServer } from "../support/server.ts";
import { loadConfig } from "../../src/config.ts";

let plain: TestServer; // TRUST_PROXY=true
let fly: TestServer; // TRUST_PROXY=fly
const peers = new Set<RawPeer>();
beforeAll(async () => {
  [plain, fly] = await Promise.all([
    startServer({ TRUST_PROXY: "true", MAX_CONNECTIONS_PER_IP: "1" }),
    startServer({ TRUST_PROXY: "fly", MAX_CONNECTIONS_PER_IP: "1" }),
  ]);
});
afterAll(() => {
  for (const p of peers) p.destroy();
  plain?.kill();
  fly?.kill();
  killAllServers();
});

async function hold(server: TestServer, headers: Record<string, string>): Promise<RawPeer> {
  const peer = await RawPeer.open(server.wsUrl, { Cookie: (await session(server, "alice")).cookie, ...headers });
  peers.add(peer);
  expect(peer.head.status).toBe(101);
  return peer;
}

async function status(server: TestServer, headers: Record<string, string>): Promise<number> {
  return (await upgradeStatus(server.wsUrl, { Cookie: (await session(server, "alice")).cookie, ...headers })).status;
}

describe("TRUST_PROXY=true", () => {
  test("the client IP is the last X-Forwarded-For hop; Fly-Client-IP is never read", async () => {
    await hold(plain, { "X-Forwarded-For": "10.0.0.1, 198.51.100.1" });
    expect(await status(plain, { "X-Forwarded-For": "10.0.0.2, 198.51.100.1" })).toBe(429); // same last hop
    // A spoofed Fly-Client-IP off Fly does not buy a fresh address: the XFF hop decides.
    expect(await status(plain, { "X-Forwarded-For": "198.51.100.1", "Fly-Client-IP": "203.0.113.50" })).toBe(429);
    await hold(plain, { "X-Forwarded-For": "198.51.100.2" });
  });

  test("the scheme comes from X-Forwarded-Proto", async () => {
    const res = await fetch(`${plain.url}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.9" },
      body: JSON.stringify({ username: "bob", password: "bob-password" }),
    });
    await res.arrayBuffer();
    expect(res.headers.get("set-cookie")).toStartWith("__Host-");
  });
});

describe("TRUST_PROXY=fly", () => {
  test("the client IP is Fly-Client-IP; X-Forwarded-For is never read", async () => {
    await hold(fly, { "Fly-Client-IP": "198.51.100.20" });
    expect(await status(fly, { "Fly-Client-IP": "198.51.100.20", "X-Forwarded-For": "203.0.113.60" })).toBe(429);
    await hold(fly, { "Fly-Client-IP": "198.51.100.21" });
  });
});

describe("the setting", () => {
  test("false, true or fly; fly by default on Fly, false elsewhere; anything else refuses to start", () => {
    const base = { SESSION_SECRET: "s".repeat(40) };
    expect(loadConfig(base).trustProxy).toBe(false);
    expect(loadConfig({ ...base, FLY_REGION: "iad" }).trustProxy).toBe("fly");
    expect(loadConfig({ ...base, FLY_REGION: "iad", TRUST_PROXY: "true" }).trustProxy).toBe(true);
    expect(loadConfig({ ...base, TRUST_PROXY: "fly" }).trustProxy).toBe("fly");
    expect(loadConfig({ ...base, TRUST_PROXY: "false" }).trustProxy).toBe(false);
    expect(() => loadConfig({ ...base, TRUST_PROXY: "cloudflare" })).toThrow("TRUST_PROXY must be false, true or fly");
  });
});
