/**
 * A randomized fault-injection checker for the delivery guarantees (SPEC §3 "Delivery", §7).
 * Run by hand, not part of `bun test` (a short fixed-seed run is: test/chaos-smoke.test.ts).
 * How to run it and read it: bench/CHAOS.md.
 *
 *   bun bench/chaos.ts --seed 7 --duration 60
 *
 * Starts its own redis-server, one TCP proxy per server between it and Redis (its link can be
 * dropped or black-holed), `--servers` server processes, client processes (bench/chaos/clients.ts)
 * and publishers over WebSocket and `/api/publish` with keys and retries; injects faults at random
 * times for `--duration` seconds; then lets everything settle and checks every client's log and
 * every publisher's answers (bench/chaos/check.ts). Exits 1 on a violation, printing the seed.
 */
import { parseArgs } from "node:util";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { type TestServer, TEST_API_KEY, loginSession, startServer } from "../test/support/server.ts";
import { type TestRedis, startRedis } from "../test/support/redis.ts";
import { type TcpProxy, startProxy } from "../test/support/proxy.ts";
import { type TestRedisCluster, startRedisCluster } from "../test/support/redis-cluster.ts";
import { check } from "./chaos/check.ts";
import { type Attempt, type FaultRecord, type PublishRecord, type TopicHistory, mulberry32 } from "./chaos/log.ts";
import { Publishers } from "./chaos/publishers.ts";

const ONE_REDIS_FAULTS = ["kill", "server-stop", "redis-stop-short", "redis-stop-long", "redis-restart", "link-drop", "blackhole", "blackhole-replies", "slow-consumer"] as const;
/** With `--cluster`: the six-node Redis Cluster of test/support/redis-cluster.ts, no proxies. */
const CLUSTER_FAULTS = ["kill", "server-stop", "failover", "primary-kill", "primary-stop-short", "slot-migrate", "slow-consumer"] as const;
type FaultKind = (typeof ONE_REDIS_FAULTS)[number] | (typeof CLUSTER_FAULTS)[number];

const { values: args } = parseArgs({
  options: {
    seed: { type: "string", default: String(Date.now() % 100_000) },
    duration: { type: "string", default: "60" },
    servers: { type: "string", default: "3" },
    "client-procs": { type: "string", default: "3" },
    clients: { type: "string", default: "4" },
    topics: { type: "string", default: "3" },
    rate: { type: "string", default: "40" },
    faults: { type: "string" },
    cluster: { type: "boolean", default: false },
    "fault-gap": { type: "string", default: "2-6" },
    "command-timeout": { type: "string", default: "500" },
    lanes: { type: "string", default: "1" },
    "history-size": { type: "string", default: "100000" },
    help: { type: "boolean", default: false },
  },
});

if (args.help) {
  console.log(`bun bench/chaos.ts [--seed N] [--duration S] [--servers 3] [--client-procs 3] [--clients 4 (per proc)]
  [--topics 3] [--rate 40 (publications/s)] [--faults ${ONE_REDIS_FAULTS.join(",")}]
  [--cluster (a six-node Redis Cluster; faults ${CLUSTER_FAULTS.join(",")})]
  [--fault-gap 2-6 (s between faults)] [--lanes 1 (fault sequences running at once)]
  [--command-timeout 500 (REDIS_COMMAND_TIMEOUT_MS)] [--history-size 100000 (HISTORY_SIZE; small: recoveries fail)]`);
  process.exit(0);
}

const seed = Number(args.seed);
const random = mulberry32(seed);
const between = (lo: number, hi: number) => lo + random() * (hi - lo);
const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
const commandTimeoutMs = Number(args["command-timeout"]);
const topics = Array.from({ length: Number(args.topics) }, (_, i) => `room:chaos-${i}`);
const allowedFaults: readonly FaultKind[] = args.cluster ? CLUSTER_FAULTS : ONE_REDIS_FAULTS;
const faultKinds = (args.faults ?? allowedFaults.join(",")).split(",").filter((f) => f !== "") as FaultKind[];
for (const f of faultKinds) if (!allowedFaults.includes(f)) throw new Error(`fault ${f} is not one of ${allowedFaults.join(",")}`);
const [gapLo, gapHi] = args["fault-gap"].split("-").map(Number) as [number, number];
const started = Date.now();
const log = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`);

interface Node {
  index: number;
  port: number;
  /** Between the server and Redis (one Redis only). */
  proxy: TcpProxy | null;
  server: TestServer | null;
}

function serverEnv(node: Node, port?: number): Record<string, string> {
  return {
    REDIS_URL: node.proxy === null ? cluster!.url : `redis://127.0.0.1:${node.proxy.port}`,
    ...(node.proxy === null ? { REDIS_CLUSTER: "true", SHED_LAG_MS: "0" } : {}),
    INSTANCE_ID: `chaos-${node.index}`,
    ...(port === undefined ? {} : { PORT: String(port) }),
    HISTORY_SIZE: args["history-size"],
    HISTORY_TTL_S: "3600",
    RATE_LIMIT_PER_S: "1000",
    RATE_LIMIT_BURST: "5000",
    MAX_CONNECTIONS_PER_IP: "10000",
    MAX_CONNECTIONS_PER_USER: "1000",
    TOPIC_CREATIONS_PER_MIN: "100000",
    BACKPRESSURE_LIMIT_BYTES: "65536",
    REDIS_COMMAND_TIMEOUT_MS: String(commandTimeoutMs),
    LOG_LEVEL: "error",
  };
}

class ClientProc {
  private lines: string[] = [];
  private waiting: ((line: string) => void) | null = null;
  stopped = false;
  constructor(readonly name: string, readonly proc: Subprocess<"pipe", "pipe", "inherit">) {
    void (async () => {
      let buffer = "";
      for await (const chunk of proc.stdout) {
        buffer += new TextDecoder().decode(chunk);
        let end: number;
        while ((end = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, end);
          buffer = buffer.slice(end + 1);
          if (this.waiting) {
            const w = this.waiting;
            this.waiting = null;
            w(line);
          } else this.lines.push(line);
        }
      }
    })();
  }
  async ask(command: string): Promise<string> {
    const answer = this.lines.length > 0 ? Promise.resolve(this.lines.shift()!) : new Promise<string>((r) => (this.waiting = r));
    this.proc.stdin.write(`${command}\n`);
    this.proc.stdin.flush();
    return answer;
  }
}

const faults: FaultRecord[] = [];
let redis: TestRedis | null = null;
let cluster: TestRedisCluster | null = null;
const nodes: Node[] = [];
const clientProcs: ClientProc[] = [];
let publishers: Publishers | null = null;
const dir = mkdtempSync(join(tmpdir(), "sb-chaos-"));

async function setUp(): Promise<void> {
  if (args.cluster) cluster = await startRedisCluster();
  else redis = await startRedis();
  for (let index = 0; index < Number(args.servers); index++) {
    nodes.push({ index, port: 0, proxy: redis === null ? null : await startProxy({ upstreams: [redis.port] }), server: null });
  }
  await Promise.all(
    nodes.map(async (node) => {
      node.server = await startServer(serverEnv(node));
      node.port = node.server.port;
    }),
  );
  const sessions = await Promise.all(["alice", "bob", "carol"].map((u) => loginSession(nodes[0]!.server!, u)));
  const cookies = sessions.map((s) => s.cookie);
  const ports = nodes.map((n) => n.port);
  for (let i = 0; i < Number(args["client-procs"]); i++) {
    const config = { name: `c${i}`, count: Number(args.clients), ports, cookies, topics, seed: Math.floor(random() * 2 ** 32) };
    const proc = Bun.spawn(["bun", join(import.meta.dir, "chaos/clients.ts"), JSON.stringify(config)], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
    clientProcs.push(new ClientProc(config.name, proc));
  }
  publishers = new Publishers({
    topics,
    cookie: cookies[2]!,
    ports: () => nodes.filter((n) => n.server !== null).map((n) => n.port),
    allPorts: ports,
    apiKey: TEST_API_KEY,
    rate: Number(args.rate),
    random: mulberry32(Math.floor(random() * 2 ** 32)),
  });
  log(`${cluster === null ? `redis :${redis!.port}` : `cluster ${cluster.url}`}, servers ${ports.map((p) => `:${p}`).join(" ")}, ${clientProcs.length} × ${args.clients} clients on ${topics.join(" ")}, seed ${seed}`);
}

async function restartServer(node: Node): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      node.server = await startServer(serverEnv(node, node.port));
      return;
    } catch (error) {
      log(`restart of server ${node.index} failed (${String(error).split("\n")[0]}), again`);
      await Bun.sleep(500);
    }
  }
  throw new Error(`server ${node.index} does not start again`);
}

/** Redis faults of two lanes never overlap each other (two restarts at once would race for the port). */
let redisBusy = false;

/** Runs one fault to its end (restarts, SIGCONTs included) and records its window. */
async function runFault(kind: FaultKind): Promise<void> {
  if (kind.startsWith("redis") || kind.startsWith("primary") || kind === "failover" || kind === "slot-migrate") {
    if (redisBusy) return;
    redisBusy = true;
    await runFaultNow(kind).finally(() => (redisBusy = false));
  } else await runFaultNow(kind);
}

async function runFaultNow(kind: FaultKind): Promise<void> {
  const start = Date.now();
  if (process.env.CHAOS_DEBUG) log(`fault ${kind} starts`);
  let target = "redis";
  if (kind === "kill") {
    const alive = nodes.filter((n) => n.server !== null);
    if (alive.length <= 1) return;
    const node = pick(alive);
    const server = node.server!;
    node.server = null;
    target = `server ${node.index}`;
    server.kill();
    await server.proc.exited;
    await Bun.sleep(between(500, 3000));
    await restartServer(node);
  } else if (kind === "server-stop") {
    // A stalled event loop (GC, a swapped-out machine): its sockets and Redis links stay open.
    const alive = nodes.filter((n) => n.server !== null);
    const node = pick(alive);
    target = `server ${node.index}`;
    node.server!.proc.kill("SIGSTOP");
    await Bun.sleep(between(300, 4000));
    node.server?.proc.kill("SIGCONT");
  } else if (kind === "redis-stop-short" || kind === "redis-stop-long") {
    redis!.signal("SIGSTOP");
    await Bun.sleep(kind === "redis-stop-short" ? between(50, commandTimeoutMs * 0.8) : between(commandTimeoutMs * 2, commandTimeoutMs * 8));
    redis!.signal("SIGCONT");
  } else if (kind === "redis-restart") {
    await redis!.kill();
    await Bun.sleep(between(100, 1500));
    await redis!.restart();
  } else if (kind === "link-drop" || kind === "blackhole" || kind === "blackhole-replies") {
    const node = pick(nodes);
    const proxy = node.proxy!;
    target = `link of server ${node.index}`;
    if (kind === "link-drop") proxy.dropAll();
    else {
      proxy.blackhole(kind === "blackhole" ? "both" : "toClient");
      // The server's canary notices a deaf link within ~3 s and opens a new one (docs/redis.md);
      // the old, silent connections are cut only later.
      await Bun.sleep(between(1000, 6000));
      proxy.dropAll();
    }
  } else if (kind === "slow-consumer") {
    const proc = pick(clientProcs);
    target = `client process ${proc.name}`;
    proc.proc.kill("SIGSTOP");
    // Enough bytes (6.5 MB) for the kernel's socket buffers (loopback: 4 MB of send buffer, the receive
    // window it had) and BACKPRESSURE_LIMIT_BYTES (64 KB here) to fill.
    await Promise.all([publishers!.burst(400, 16_384), Bun.sleep(between(2000, 5000))]);
    proc.proc.kill("SIGCONT");
  } else target = await clusterFault(kind);
  faults.push({ kind, target, start, end: Date.now() });
  log(`fault ${kind} (${target}) ${Date.now() - start} ms`);
}

/** One lane of faults, one after another; `--lanes 2` runs two at once, so faults overlap. */
/** A fault of the Redis Cluster, on the primary of a random topic's shard; returns what it hit. */
async function clusterFault(kind: FaultKind): Promise<string> {
  const c = cluster!;
  const primary = await c.primaryOf(`sb:{${pick(topics)}}:ch`);
  const node = c.nodes.find((n) => n.port === primary)!;
  if (kind === "failover") {
    const replica = await c.replicaOf(primary);
    await c.cli(replica, "CLUSTER", "FAILOVER");
    await c.waitHealthy(20_000);
    return `primary :${primary} → replica :${replica}`;
  }
  if (kind === "primary-kill") {
    await node.kill();
    await c.waitFailedOver(primary, 30_000);
    await node.restart();
    await c.waitHealthy(30_000);
    return `primary :${primary}`;
  }
  if (kind === "slot-migrate") return migrateSlots(c, primary);
  // primary-stop-short: frozen for less than the command deadline, well within cluster-node-timeout.
  node.signal("SIGSTOP");
  await Bun.sleep(between(50, commandTimeoutMs * 0.8));
  node.signal("SIGCONT");
  return `primary :${primary}`;
}

/**
 * A live resharding (test/support/redis-cluster.ts, `redis-cli --cluster reshard`'s steps): the
 * slots of a random topic, of its presence keys, of one revocation shard and one webhook outbox
 * shard, from their owners to another primary (one with a replica: the failover faults need one),
 * with a pause of 0–200 ms between steps so that traffic meets each slot split between two nodes.
 */
async function migrateSlots(c: TestRedisCluster, from: number): Promise<string> {
  const topic = pick(topics);
  const keys = [`sb:{${topic}}:ch`, `sb:{p:${topic}}:conns`, `sb:revocations:{${Math.floor(random() * 16)}}`, `sb:{wh:${Math.floor(random() * 16)}}:events`];
  const to = pick((await c.primaries()).filter((p) => p !== from));
  const slots = [...new Set(keys.map((k) => c.slotOf(k)))];
  const report = await c.migrateSlots(slots, to, { pauseMs: between(0, 200) });
  return `slots ${slots.join(",")} (${topic}'s first) → :${to}, ${report.keys} keys in ${report.ms} ms`;
}

async function injectFaults(until: number): Promise<void> {
  await Bun.sleep(between(gapLo, gapHi) * 1000);
  while (Date.now() < until) {
    if (faultKinds.length > 0) await runFault(pick(faultKinds));
    await Bun.sleep(Math.max(0, Math.min(until - Date.now(), between(gapLo, gapHi) * 1000)));
  }
}

async function history(topic: string): Promise<TopicHistory> {
  const get = async (query: string) => {
    const res = await fetch(`http://127.0.0.1:${nodes[0]!.port}/api/history/${topic}?${query}`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } });
    if (res.status !== 200) throw new Error(`history of ${topic} → ${res.status} ${await res.text()}`);
    return (await res.json()) as { epoch: string; seq: number; messages: TopicHistory["messages"] };
  };
  const { epoch, seq } = await get("limit=1");
  const messages: TopicHistory["messages"] = [];
  for (let since = 0; since < seq; ) {
    const page = await get(`since=${since}&epoch=${epoch}&limit=1000`);
    if (page.epoch !== epoch || page.messages.length === 0) break;
    messages.push(...page.messages);
    since = page.messages[page.messages.length - 1]!.seq;
  }
  return { topic, epoch, seq, messages };
}

type Report = { id: string; open: boolean; positions: Record<string, { epoch: string; seq: number } | null> }[];

/** Waits (bounded) until every client is subscribed and at the history's latest on every topic. */
async function settle(timeoutMs: number): Promise<TopicHistory[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const histories = await Promise.all(topics.map(history));
    const reports = (await Promise.all(clientProcs.map(async (p) => JSON.parse(await p.ask("positions")) as Report))).flat();
    const behind = reports.filter((r) => histories.some((h) => r.positions[h.topic]?.epoch !== h.epoch || r.positions[h.topic]?.seq !== h.seq));
    if (behind.length === 0 || Date.now() > deadline) {
      if (behind.length > 0) log(`settle: ${behind.length} clients still behind after ${timeoutMs} ms`);
      return histories;
    }
    await Bun.sleep(250);
  }
}

async function collectLogs() {
  return (
    await Promise.all(
      clientProcs.map(async (p) => {
        const file = join(dir, `${p.name}.json`);
        await p.ask(`stop ${file}`);
        p.stopped = true;
        return JSON.parse(readFileSync(file, "utf8"));
      }),
    )
  ).flat();
}

async function tearDown(): Promise<void> {
  await publishers?.stop();
  for (const p of clientProcs) {
    if (!p.stopped) p.proc.kill("SIGKILL");
  }
  for (const n of nodes) n.server?.kill();
  for (const n of nodes) await n.proxy?.close();
  redis?.signal("SIGCONT");
  await redis?.stop();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
}

function printReport(result: ReturnType<typeof check>, publishes: PublishRecord[]): void {
  const count = new Map<string, number>();
  for (const f of faults) count.set(f.kind, (count.get(f.kind) ?? 0) + 1);
  console.log(`\n== chaos seed ${seed}, ${args.duration} s, ${nodes.length} servers, ${clientProcs.length * Number(args.clients)} clients, ${topics.length} topics`);
  console.log(`faults: ${[...count].map(([k, n]) => `${k}×${n}`).join(", ") || "none"}`);
  console.log(`stats: ${Object.entries(result.stats).map(([k, v]) => `${k}=${v}`).join(" ")}`);
  const outcomes = new Map<string, number>();
  for (const p of publishes) for (const a of p.attempts) outcomes.set(a.outcome, (outcomes.get(a.outcome) ?? 0) + 1);
  console.log(`publish attempts: ${[...outcomes].map(([k, n]) => `${k}=${n}`).join(" ")}`);
  // Refusals are expected while a fault lasts and for the command deadline after it; others say so.
  const during = (a: Attempt) => faults.some((f) => a.t1 >= f.start && a.t0 <= f.end + commandTimeoutMs + 1000);
  const outside = publishes.flatMap((p) => p.attempts).filter((a) => a.outcome === "unavailable" && !during(a));
  console.log(`unavailable outside every fault's window (+ command timeout + 1 s): ${outside.length}${outside.length > 0 ? ` (first at ${new Date(outside[0]!.t0).toISOString()})` : ""}`);
  for (const a of result.allowances) console.log(`allowed ×${a.count}: ${a.kind} — ${a.doc} (e.g. ${a.example})`);
  if (result.violations.length === 0) {
    console.log(`OK: no violation (seed ${seed})`);
    return;
  }
  const byKind = new Map<string, string[]>();
  for (const v of result.violations) byKind.set(v.kind, [...(byKind.get(v.kind) ?? []), v.detail]);
  for (const [kind, details] of byKind) {
    console.log(`VIOLATION ×${details.length}: ${kind}`);
    for (const d of details.slice(0, 8)) console.log(`  ${d}`);
  }
  console.log(`FAILED: replay with  bun bench/chaos.ts --seed ${seed} --duration ${args.duration} --faults ${faultKinds.join(",")}`);
  console.log(`fault timeline (ms from start): ${faults.map((f) => `${f.kind}@${f.start - started}+${f.end - f.start}`).join(" ")}`);
}

async function main(): Promise<number> {
  await setUp();
  publishers!.start();
  const until = Date.now() + Number(args.duration) * 1000;
  await Promise.all(Array.from({ length: Number(args.lanes) }, () => injectFaults(until)));
  log("faults over; publishers finish their retries");
  await publishers!.stop();
  const histories = await settle(20_000);
  const clients = await collectLogs();
  const publishes = publishers!.records();
  const result = check({ clients, publishes, histories, faults });
  printReport(result, publishes);
  return result.violations.length === 0 ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(`chaos run aborted (seed ${seed}):`, error);
  code = 2;
} finally {
  await tearDown().catch(() => {});
}
process.exit(code);
