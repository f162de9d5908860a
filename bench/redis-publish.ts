/**
 * `bun run bench -- --scenario redis [--topics 1000] [--publications 40000] [--window 1000]`
 * (or `bun bench/redis-publish.ts` with the same flags)
 *
 * What one ordered publication costs Redis, and how far publishing goes on one Redis vs a Redis
 * Cluster of 3 primaries (+3 replicas), in the same run on this machine:
 * 1. The publish script's own cost (INFO commandstats usec_per_call) for each variant measured
 *    while cutting it down: the old script, and the current one with each of its choices undone.
 * 2. RedisBroker.publish to `--topics` topics, `--window` publications in flight, one subscribed
 *    broker receiving every publication: publications/s, and Redis CPU per publication (the
 *    primaries' used_cpu_user+sys, whole process: networking, replication and pub/sub included).
 * Everything shares this machine's 2 cores: the client (one Bun process) is part of the load, so
 * publications/s is a floor; Redis CPU per publication is the number that projects (see README).
 */
import Redis from "ioredis";
import { parseArgs } from "node:util";
import { RedisBroker } from "../src/broker/redis.ts";
import { framePrefix, frameSuffix } from "../src/broker/frame.ts";
import { FUNCTION_NAMES, LIBRARY, PUBLISH_SCRIPT } from "../src/broker/redis-scripts.ts";
import { startRedis } from "../test/support/redis.ts";
import { startRedisCluster } from "../test/support/redis-cluster.ts";

const { values } = parseArgs({
  args: Bun.argv.slice(2).filter((a) => a !== "--scenario" && a !== "redis" && a !== "--scenario=redis"),
  options: {
    topics: { type: "string", default: "1000" },
    publications: { type: "string", default: "40000" },
    window: { type: "string", default: "1000" },
    calls: { type: "string", default: "20000" },
  },
});
const TOPICS = Number(values.topics);
const PUBLICATIONS = Number(values.publications);
const WINDOW = Number(values.window);
const CALLS = Number(values.calls);

const NO_CHECK = (lua: string) => lua.replace(/string\.match\(redis\.call\("INFO", "replication"\), "master_replid:\(%x\+\)"\)/g, '"fixed"');
const APPROX = (lua: string) => lua.replace('"MAXLEN", size', '"MAXLEN", "~", size');
/** [how it runs, source]: "eval" sources are scripts (EVALSHA), "function" sources are libraries (FCALL). */
const VARIANTS: Record<string, ["eval" | "function", string]> = {
  "EVALSHA, no writer check (≈ the script before this work)": ["eval", NO_CHECK(PUBLISH_SCRIPT)],
  "EVALSHA, no writer check, MAXLEN ~": ["eval", APPROX(NO_CHECK(PUBLISH_SCRIPT))],
  "EVALSHA, writer check by INFO per call (the Redis 6.2 path)": ["eval", PUBLISH_SCRIPT],
  "FCALL, cached writer id (what runs on Redis 7)": ["function", LIBRARY],
  "FCALL, cached writer id, MAXLEN ~": ["function", APPROX(LIBRARY)],
  // Diagnostics, not valid scripts: where the rest of the cost goes.
  "(diagnostic) FCALL without the two EXPIREs": ["function", LIBRARY.replace(/redis\.call\("EXPIRE", KEYS\[[12]\], ttl\)/g, "")],
  "(diagnostic) FCALL without the stream append": ["function", LIBRARY.replace(/redis\.call\("XADD"[^\n]*\n/, "\n")],
  "(diagnostic) FCALL without the PUBLISH": ["function", LIBRARY.replace(/redis\.call\(ARGV\[8\][^\n]*\n/, "\n")],
  "(diagnostic) FCALL that only returns (the floor of one call)": [
    "function",
    LIBRARY.replace(/redis\.register_function\("sb_publish_[0-9a-f]+", function\(KEYS, ARGV\)\n/, (m) => `${m}do return { 1, "e", 0 } end\n`),
  ],
};

/** Per variant: usec_per_call (wall time inside the command: inflated when the machine is busy) and
 * the Redis process's CPU time per call (used_cpu_user+sys: preemption-proof, networking included). */
async function scriptCosts(): Promise<Record<string, { usecPerCall: number; cpuUsPerCall: number }>> {
  const redis = await startRedis();
  const client = new Redis(redis.url, { enableAutoPipelining: true, lazyConnect: true });
  await client.connect();
  const out: Record<string, { usecPerCall: number; cpuUsPerCall: number }> = {};
  try {
    for (const [name, [kind, lua]] of Object.entries(VARIANTS)) {
      const sha = kind === "eval" ? ((await client.script("LOAD", lua)) as string) : "";
      if (kind === "function") await client.call("FUNCTION", "LOAD", "REPLACE", lua);
      await client.flushall();
      await client.config("RESETSTAT");
      const cpuBefore = await cpuOf([redis.port]);
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < CALLS; i++) {
        const topic = `room:cost-${i % TOPICS}`;
        const keys = [`sb:{${topic}}:meta`, `sb:{${topic}}:log`];
        const args = ["", "e0e0e0e0e0e0e0e0", 100, 300, framePrefix(topic), frameSuffix({ from: "bench", data: { i, text: "hello" }, ts: 1 }), `sb:{${topic}}:ch`, "PUBLISH"];
        pending.push(kind === "eval" ? client.evalsha(sha, keys.length, ...keys, ...args) : client.fcall(FUNCTION_NAMES.publish, keys.length, ...keys, ...args));
        if (pending.length >= WINDOW) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
      const stats = (await client.info("commandstats")) as string;
      const cpuUsPerCall = Number(((((await cpuOf([redis.port])) - cpuBefore) * 1e6) / CALLS).toFixed(2));
      out[name] = { cpuUsPerCall, usecPerCall: Number(new RegExp(`cmdstat_${kind === "eval" ? "evalsha" : "fcall"}:calls=\\d+,usec=\\d+,usec_per_call=([\\d.]+)`).exec(stats)?.[1] ?? NaN) };
    }
  } finally {
    client.disconnect();
    await redis.stop();
  }
  return out;
}

async function cpuOf(ports: number[]): Promise<number> {
  let total = 0;
  for (const port of ports) {
    const client = new Redis(port, "127.0.0.1", { lazyConnect: true });
    await client.connect();
    const info = (await client.info("cpu")) as string;
    client.disconnect();
    total += Number(/used_cpu_user:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]);
  }
  return total;
}

async function throughput(url: string, cluster: boolean, primaries: number[]) {
  const events = { onPublication() {}, onEphemeral() {}, onControl() {}, onReconnect() {} };
  let received = 0;
  const publisher = new RedisBroker({ url, cluster, instanceId: "bench-pub", historySize: 100, historyTtlS: 300, commandTimeoutMs: 5000 });
  const subscriber = new RedisBroker({ url, cluster, instanceId: "bench-sub", historySize: 100, historyTtlS: 300, commandTimeoutMs: 5000 });
  await publisher.start(events);
  await subscriber.start({ ...events, onPublication: () => void received++ });
  const topics = Array.from({ length: TOPICS }, (_, i) => `room:bench-${cluster ? "c" : "s"}-${i}`);
  for (const t of topics) await subscriber.subscribe(t);
  const cpuBefore = await cpuOf(primaries);
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < PUBLICATIONS) {
      const i = next++;
      await publisher.publish(topics[i % TOPICS]!, { from: "bench", data: { i, text: "hello" }, ts: Date.now() });
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  const seconds = (performance.now() - started) / 1000;
  const deadline = Date.now() + 10_000;
  while (received < PUBLICATIONS && Date.now() < deadline) await Bun.sleep(20);
  const cpu = (await cpuOf(primaries)) - cpuBefore;
  await publisher.close();
  await subscriber.close();
  return {
    publicationsPerS: Math.round(PUBLICATIONS / seconds),
    delivered: received,
    redisCpuUsPerPublication: Number(((cpu * 1e6) / PUBLICATIONS).toFixed(2)),
  };
}

async function primaryPorts(cluster: { cli(port: number, ...args: string[]): Promise<string>; nodes: { port: number }[] }) {
  const text = await cluster.cli(cluster.nodes[0]!.port, "CLUSTER", "NODES");
  return text.split("\n").filter((l) => l.includes("master")).map((l) => Number(l.split(" ")[1]!.split("@")[0]!.split(":")[1]));
}

const costs = await scriptCosts();
console.log(`publish script, ${CALLS} calls over ${TOPICS} topics on one Redis: usec_per_call (INFO commandstats) / Redis process CPU per call:`);
for (const [name, c] of Object.entries(costs)) console.log(`  ${c.usecPerCall.toFixed(2).padStart(6)} µs / ${c.cpuUsPerCall.toFixed(2).padStart(6)} µs  ${name}`);

const single = await startRedis();
const cluster = await startRedisCluster();
try {
  const one = await throughput(single.url, false, [single.port]);
  const primaries = await primaryPorts(cluster);
  const three = await throughput(cluster.url, true, primaries);
  console.log(`\n${PUBLICATIONS} publications to ${TOPICS} topics, ${WINDOW} in flight, 1 subscribed process:`);
  for (const [name, r] of [["one Redis", one], [`cluster, ${primaries.length} primaries`, three]] as const) {
    console.log(`  ${name.padEnd(22)} ${String(r.publicationsPerS).padStart(7)} publications/s  ${r.redisCpuUsPerPublication.toFixed(2).padStart(6)} µs Redis CPU per publication (all primaries)  delivered ${r.delivered}`);
  }
  const perPrimary = Math.round(1e6 / three.redisCpuUsPerPublication);
  console.log(`\nprojection: one primary core saturates at ~${Math.round(1e6 / one.redisCpuUsPerPublication)} publications/s (one Redis) / ~${perPrimary} per primary in the cluster;` +
    ` N primaries ≈ N × ${perPrimary} publications/s while the topics spread evenly over the slots`);
  console.log(JSON.stringify({ bench: "redis-publish", date: new Date().toISOString(), topics: TOPICS, publications: PUBLICATIONS, window: WINDOW, scriptCosts: costs, one, cluster: { primaries: primaries.length, ...three } }));
} finally {
  await single.stop();
  await cluster.stop();
}
