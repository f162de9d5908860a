/**
 * An idle process sleeps (bench/README.md "Idle"): two processes on one Redis, no client. The
 * revocation fence's canaries (every 50 ms), the load guard's lag sampler (50 ms) and the default
 * metrics' lag histogram (10 ms) used to wake each one ~180 times a second and send Redis ~40
 * commands a second; now the fence lapses when no credential check wants it (docs/redis.md "The
 * revocation fence") and the samplers run only while asked. A lapsed fence is as safe as ever: a
 * logout answered while it had lapsed is refused at once on the other process, and the first
 * upgrade after a lapse costs one Redis read, not a refusal.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import Redis from "ioredis";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { loginSession, postJson, type TestServer } from "./support/server.ts";
import { keptOn, revocationChecks, upgradeCode } from "./support/fence.ts";
import { FENCE_LAPSE_MS } from "../src/broker/redis-fence.ts";

let cluster: TestCluster;
let A: TestServer, B: TestServer;
let redis: Redis;

beforeAll(async () => {
  cluster = await startCluster(["idle-a", "idle-b"]);
  [A, B] = cluster.nodes as [TestServer, TestServer];
  redis = new Redis(cluster.redis.url);
}, 40_000);
afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

/** PUBLISH and PING calls Redis has run so far (the canaries, the publish link's checks). */
async function canaryCommands(): Promise<number> {
  const stats = await redis.info("commandstats");
  let calls = 0;
  for (const m of stats.matchAll(/^cmdstat_(publish|ping):calls=(\d+)/gm)) calls += Number(m[2]);
  return calls;
}

/** Times the process's main thread went to sleep and was woken (a busy machine does not add to these). */
function mainThreadWakeups(server: TestServer): number {
  const status = readFileSync(`/proc/${server.proc.pid}/status`, "utf8");
  return Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)![1]);
}

/** Over `ms` of quiet: the canary commands of the whole deployment per second, and each process's wake-ups per second. */
async function idleRates(ms: number): Promise<{ commandsPerS: number; wakeupsPerS: number[] }> {
  const commands = await canaryCommands();
  const wakeups = [A, B].map(mainThreadWakeups);
  await Bun.sleep(ms);
  return {
    commandsPerS: ((await canaryCommands()) - commands) / (ms / 1000),
    wakeupsPerS: [A, B].map((server, i) => (mainThreadWakeups(server) - wakeups[i]!) / (ms / 1000)),
  };
}

/**
 * Commands naming a deployment registry key (`{deploy}`) the processes sent per second over `ms`, as
 * MONITOR shows them (the commands a script runs, source "lua", left out: a script call is one).
 */
async function registryCallsPerS(ms: number): Promise<number> {
  const monitor = await redis.monitor();
  let calls = 0;
  monitor.on("monitor", (_time: string, args: string[], source: string) => {
    if (source !== "lua" && args.some((arg) => arg.includes("{deploy}"))) calls += 1;
  });
  await Bun.sleep(ms);
  monitor.disconnect();
  return calls / (ms / 1000);
}

describe("an idle process", () => {
  test("sends Redis a few commands a second and wakes a few dozen times, not ~40 and ~180", async () => {
    await Bun.sleep(1500); // past start-up (the first registry reads, the default metrics' module)
    const { commandsPerS, wakeupsPerS } = await idleRates(3000);
    // Each process: one canary and one PING a second (4/s for both) — the fence's canaries added 20 + 20 each.
    expect(commandsPerS).toBeLessThan(10);
    for (const rate of wakeupsPerS) expect(rate).toBeLessThan(60);
  }, 30_000);

  test("reports to the deployment registry and reads it back in one call a second, not seven commands", async () => {
    await Bun.sleep(1500);
    // Each process: one script call a second (its report, and the live list its fence windows read).
    // Before: MULTI, SET, SADD, DEL, EXEC and SMEMBERS, MGET, of which five name a key: 10/s for both.
    expect(await registryCallsPerS(4000)).toBeLessThanOrEqual(2.5);
  }, 30_000);
});

describe("the revocation fence after a lapse", () => {
  test("the first upgrade reads Redis once and is taken; the fence is current again right after", async () => {
    const { cookie } = await loginSession(A, "alice");
    await keptOn(A, cookie);
    await Bun.sleep(FENCE_LAPSE_MS + 1000);
    expect((await idleRates(2000)).commandsPerS).toBeLessThan(10); // lapsed on both
    const before = await revocationChecks(A);
    expect(await upgradeCode(A, cookie)).toBe(101);
    const after = await revocationChecks(A);
    expect(after.store - before.store).toBe(1);
    expect(after.kept - before.kept).toBe(0);
    await keptOn(A, cookie);
  }, 60_000);

  test("a logout answered while B's fence had lapsed is refused at B at once, though B kept the session", async () => {
    const { cookie } = await loginSession(A, "bob");
    await keptOn(B, cookie);
    await Bun.sleep(FENCE_LAPSE_MS + 1000);
    expect((await idleRates(2000)).commandsPerS).toBeLessThan(10);
    expect((await postJson(A, "/auth/logout", {}, { Cookie: cookie, Origin: A.origin })).status).toBe(204);
    expect(await upgradeCode(B, cookie)).toBe(401);
    // B still takes a session nobody revoked, and keeps its answer again.
    await keptOn(B, (await loginSession(A, "bob")).cookie);
  }, 60_000);
});
