/**
 * SPEC §0 `WORKERS=N`: N processes share the port on one machine, each a member of the deployment
 * in its own right (instance `INSTANCE_ID-w<i>`) through Redis. A dead worker is restarted, SIGTERM
 * drains them all, and without REDIS_URL the server refuses to start.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { TEST_ENV, freePort, session, spawnServer, startServer, type TestServer } from "./support/server.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { scrape } from "./support/metrics.ts";
import { workerInstanceId } from "../src/cluster.ts";
import { loadConfig } from "../src/config.ts";

let redis: TestRedis;
let box: TestServer;
const servers: TestServer[] = [];
const clients = new Set<TestClient>();

beforeAll(async () => {
  redis = await startRedis();
  box = await startServer({ REDIS_URL: redis.url, WORKERS: "2", INSTANCE_ID: "box", DRAIN_MS: "500" }, { startTimeoutMs: 20_000 });
  servers.push(box);
}, 30_000);
afterAll(async () => {
  await closeAll(clients);
  for (const s of servers) s.kill();
  await redis?.stop();
});

/** Pids of the supervisor's children (the workers). */
function workerPids(supervisor: number): number[] {
  const out = Bun.spawnSync(["ps", "-o", "pid=", "--ppid", String(supervisor)]).stdout.toString();
  return out
    .split("\n")
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Connects (as `user`) until it has one socket on each of `instances`; the kernel picks the
 * worker, so this retries, bounded in time and attempts. Extra sockets are closed.
 */
async function onEach(server: TestServer, user: string, instances: string[], timeoutMs = 10_000): Promise<Map<string, TestClient>> {
  const { cookie } = await session(server, user);
  const found = new Map<string, TestClient>();
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 500 && found.size < instances.length; attempt++) {
    if (Date.now() > deadline) break;
    let c: TestClient;
    try {
      c = await TestClient.connect(server.wsUrl, { cookie });
    } catch {
      await Bun.sleep(100); // a worker is (re)starting
      continue;
    }
    clients.add(c);
    const instance = c.frames.find((f) => f.type === "welcome")!.instance as string;
    if (instances.includes(instance) && !found.has(instance)) found.set(instance, c);
    else {
      await c.closeAndWait(1000, 1000);
      await Bun.sleep(20); // the wanted worker may still be starting
    }
  }
  if (found.size < instances.length) throw new Error(`only reached ${[...found.keys()].join(", ") || "no worker"} of ${instances.join(", ")} within ${timeoutMs} ms`);
  return found;
}

describe("WORKERS=N shares one port", () => {
  test("clients landing on different workers receive each other's publications, in one order", async () => {
    const sockets = await onEach(box, "alice", ["box-w0", "box-w1"]);
    const a = sockets.get("box-w0")!;
    const b = sockets.get("box-w1")!;
    const topic = "room:workers";
    await a.subscribe(topic);
    await b.subscribe(topic);
    await a.publish(topic, "from w0");
    await b.publish(topic, "from w1");
    const [seenA, seenB] = await Promise.all([a.waitMessages(topic, 2), b.waitMessages(topic, 2)]);
    const view = (m: (typeof seenA)[number]) => [m.seq, m.data];
    expect(seenA.map(view)).toEqual([
      [1, "from w0"],
      [2, "from w1"],
    ]);
    expect(seenB.map(view)).toEqual(seenA.map(view));
  });

  test("/metrics on the shared port answers for the whole machine, whichever worker takes the scrape", async () => {
    for (let i = 0; i < 4; i++) {
      const s = await scrape(box);
      expect([s.value("switchboard_info", { instance: "box-w0" }), s.value("switchboard_info", { instance: "box-w1" })]).toEqual([1, 1]);
      expect(s.value("switchboard_broker_up")).toBe(1);
      expect(s.value("switchboard_connections")).toBeGreaterThanOrEqual(2);
    }
  });

  test("a worker that dies is restarted with the same instance id", async () => {
    const sockets = await onEach(box, "bob", ["box-w0", "box-w1"]);
    const pids = workerPids(box.proc.pid);
    expect(pids.length).toBe(2);
    process.kill(pids[0]!, "SIGKILL");
    // Exactly one of bob's sockets loses its worker.
    const dead = await Promise.race(
      [...sockets].map(async ([instance, c]) => {
        await c.waitClose(5000);
        return instance;
      }),
    );
    const survivor = [...sockets].find(([instance]) => instance !== dead)![1];
    expect(survivor.isOpen).toBe(true);
    const again = await onEach(box, "bob", [dead], 15_000);
    expect(again.get(dead)!.isOpen).toBe(true);
    const now = workerPids(box.proc.pid);
    expect(now.length).toBe(2);
    expect(now).not.toContain(pids[0]);
    expect(box.logs()).toContain("worker exited; restarting it");
  }, 30_000);

  test("SIGTERM drains every worker (1012) and the machine exits 0", async () => {
    const sockets = await onEach(box, "carol", ["box-w0", "box-w1"]);
    const pids = workerPids(box.proc.pid);
    expect(await box.stop("SIGTERM", 10_000)).toBe(0);
    for (const c of sockets.values()) expect((await c.waitClose(3000)).code).toBe(1012);
    for (const pid of pids) expect(alive(pid)).toBe(false);
  }, 20_000);
});

describe("WORKERS=N supervision", () => {
  test("a supervisor killed outright takes its workers with it (they drain and exit)", async () => {
    const machine = await startServer({ REDIS_URL: redis.url, WORKERS: "2", INSTANCE_ID: "orphans", DRAIN_MS: "200" }, { startTimeoutMs: 20_000 });
    servers.push(machine);
    const deadline = Date.now() + 10_000;
    let pids = workerPids(machine.proc.pid);
    while (pids.length < 2 && Date.now() < deadline) {
      await Bun.sleep(100);
      pids = workerPids(machine.proc.pid);
    }
    expect(pids.length).toBe(2);
    machine.kill();
    while (pids.some(alive) && Date.now() < deadline) await Bun.sleep(100);
    expect(pids.filter(alive)).toEqual([]);
  }, 30_000);

  test("worker instance ids are INSTANCE_ID-w<i>, cut to fit the 64 characters INSTANCE_ID allows", () => {
    expect(workerInstanceId("148e21ea7d4589", 0)).toBe("148e21ea7d4589-w0");
    const long = workerInstanceId("m".repeat(64), 12);
    expect(long).toBe(`${"m".repeat(60)}-w12`);
    expect(loadConfig({ INSTANCE_ID: long }).instanceId).toBe(long);
  });

  test("WORKERS above 1 without REDIS_URL refuses to start with one clear line", async () => {
    const spawned = spawnServer({ ...TEST_ENV, WORKERS: "2", PORT: String(freePort()) });
    expect(await spawned.exited).toBe(1);
    const lines = spawned.stderr().trim().split("\n");
    expect(lines).toEqual(["invalid configuration: WORKERS above 1 needs REDIS_URL (workers share topics through Redis)"]);
    expect(spawned.stdout()).toBe("");
  });
});
