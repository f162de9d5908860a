/**
 * The revocation fence seen from outside: a machine's revocation checks by answer (its metrics),
 * and opening sockets of a session until the machine answered one from a kept "not revoked".
 */
import { expect } from "bun:test";
import { upgradeStatus } from "./raw-ws.ts";
import { scrape } from "./metrics.ts";
import type { TestServer } from "./server.ts";

/**
 * Each server's last revocation checks while its `kept` count is still current: a check answered
 * from what a server kept says "not revoked", so only an upgrade it accepted can move the count, and
 * `upgradeCode` forgets the server's entry on a 101. `keptOn` starts from it: one /metrics wait
 * (a second, SPEC §8) less per call. So every upgrade a test makes on a server it passes to `keptOn`
 * goes through `upgradeCode`.
 */
const current = new WeakMap<TestServer, { kept: number; store: number }>();

/** The HTTP status of a cookie upgrade on `server`: 101, or 401 for a revoked credential. */
export async function upgradeCode(server: TestServer, cookie: string): Promise<number> {
  const { status } = await upgradeStatus(server.wsUrl, { Cookie: cookie }, 5000);
  if (status === 101) current.delete(server);
  return status;
}

/** The server's revocation checks so far, by answer. */
export async function revocationChecks(server: TestServer): Promise<{ kept: number; store: number }> {
  const s = await scrape(server);
  const checks = { kept: s.value("switchboard_revocation_checks_total", { answer: "kept" }), store: s.value("switchboard_revocation_checks_total", { answer: "store" }) };
  current.set(server, checks);
  return checks;
}

/** Opens sockets of the session on `server` until one was answered from what it kept (its fence became current). */
export async function keptOn(server: TestServer, cookie: string): Promise<void> {
  const before = (current.get(server) ?? (await revocationChecks(server))).kept;
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 4; i++) {
      expect(await upgradeCode(server, cookie)).toBe(101);
      await Bun.sleep(20);
    }
    // /metrics renders at most once a second (SPEC §8): a few upgrades per scrape.
    if ((await revocationChecks(server)).kept > before) return;
  }
  throw new Error("the server never reused the session's \"not revoked\"");
}
