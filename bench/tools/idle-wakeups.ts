/**
 * What an idle deployment costs (bench/README.md "Idle"): wake-ups per second of each server
 * process (voluntary + involuntary context switches of every thread, `/proc/<pid>/task/<tid>/status`),
 * its CPU per minute, and the Redis commands per second it causes (`INFO commandstats` deltas, the
 * reads of this tool left out; the commands a script runs count too, as Redis counts them) and
 * redis-server's own wake-ups and CPU. Nothing is sent to the servers while measuring.
 *
 *   bun bench/tools/idle-wakeups.ts [--roots DIR,DIR] [--procs 2] [--redis on|off] [--sockets 0]
 *                                   [--seconds 20] [--runs 2] [--settle 3] [--threads]
 *
 * `--roots` alternates checkouts (old, new, old, new, …; default this one); each run starts a fresh
 * Redis and fresh processes. `--sockets N` opens N authenticated sockets (one topic subscribed each)
 * on the first process before measuring. `--threads` prints wake-ups per thread name.
 */
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { perThread, procs, ROOT, redisCommandStats, startRedis, startServers, threadsOnCpuNs, type Servers } from "../lib/cluster.ts";

const { values: f } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    roots: { type: "string", default: ROOT },
    procs: { type: "string", default: "2" },
    redis: { type: "string", default: "on" },
    sockets: { type: "string", default: "0" },
    seconds: { type: "string", default: "20" },
    runs: { type: "string", default: "2" },
    settle: { type: "string", default: "3" },
    threads: { type: "boolean", default: false },
  },
});

/** Context switches (voluntary + involuntary) by thread, with the thread's name. */
function switches(pid: number): Map<number, { name: string; n: number }> {
  return perThread(pid, (dir) => {
    const status = readFileSync(`${dir}/status`, "utf8");
    const count = (kind: string) => Number(new RegExp(`^${kind}_ctxt_switches:\\s*(\\d+)`, "m").exec(status)![1]);
    return { name: /^Name:\s*(.*)$/m.exec(status)![1]!.replace(/\d+$/, "#"), n: count("voluntary") + count("nonvoluntary") };
  });
}

/** CPU ns (user + system) of a process, exact (schedstat of every thread). */
function cpuNs(pid: number): number {
  let ns = 0;
  for (const v of threadsOnCpuNs(pid).values()) ns += v;
  return ns;
}

async function openSockets(servers: Servers, n: number): Promise<WebSocket[]> {
  const ep = servers.endpoints[0]!;
  const sockets: WebSocket[] = [];
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(`ws://${ep.host}:${ep.port}/ws`, { headers: { Cookie: servers.cookie!, Origin: `http://${ep.host}:${ep.port}` } } as unknown as string[]);
    await new Promise<void>((resolve, reject) => {
      ws.onmessage = (e) => {
        const frame = JSON.parse(String(e.data));
        if (frame.type === "welcome") ws.send(JSON.stringify({ type: "subscribe", ref: 1, topic: `room:idle-${i}` }));
        else if (frame.type === "ack" && frame.ref === 1) resolve();
        else if (frame.type === "error") reject(new Error(`idle socket: ${e.data}`));
      };
      ws.onerror = () => reject(new Error("idle socket failed"));
    });
    sockets.push(ws);
  }
  return sockets;
}

interface Run {
  root: string;
  wakeupsPerS: number[];
  cpuMsPerMin: number[];
  redisCmdsPerS: number;
  redisWakeupsPerS: number;
  /** redis-server's CPU (every thread), ms per minute. */
  redisCpuMsPerMin: number;
  byCommand: Record<string, number>;
  byThread: Record<string, number>;
}

async function run(root: string): Promise<Run> {
  const redis = f.redis === "on" ? await startRedis() : undefined;
  const servers = await startServers("switchboard", Number(f.procs), redis?.url ?? "", { root });
  const sockets = await openSockets(servers, Number(f.sockets));
  await Bun.sleep(Number(f.settle) * 1000);
  const pids = servers.procs.map((p) => p.pid);
  const seconds = Number(f.seconds);
  const before = pids.map(switches);
  const cpuBefore = pids.map(cpuNs);
  const redisBefore = redis ? await redisCommandStats(redis.port) : {};
  const redisSwBefore = redis ? switches(redis.proc.pid) : new Map();
  const redisCpuBefore = redis ? cpuNs(redis.proc.pid) : 0;
  const t0 = performance.now();
  await Bun.sleep(seconds * 1000);
  const elapsedS = (performance.now() - t0) / 1000;
  const after = pids.map(switches);
  const cpuAfter = pids.map(cpuNs);
  const redisSwAfter = redis ? switches(redis.proc.pid) : new Map();
  const redisCpuAfter = redis ? cpuNs(redis.proc.pid) : 0;
  const redisAfter = redis ? await redisCommandStats(redis.port) : {};
  const byThread: Record<string, number> = {};
  const wakeupsPerS = pids.map((_, i) => {
    let total = 0;
    for (const [tid, { name, n }] of after[i]!) {
      const d = n - (before[i]!.get(tid)?.n ?? 0);
      total += d;
      byThread[name] = (byThread[name] ?? 0) + d / elapsedS;
    }
    return total / elapsedS;
  });
  const byCommand: Record<string, number> = {};
  let redisCmds = 0;
  for (const [cmd, { calls }] of Object.entries(redisAfter)) {
    if (cmd === "info") continue; // this tool's own reads
    const d = calls - (redisBefore[cmd]?.calls ?? 0);
    if (d > 0) byCommand[cmd] = Math.round((d / elapsedS) * 10) / 10;
    redisCmds += d;
  }
  let redisSw = 0;
  for (const [tid, { n }] of redisSwAfter) redisSw += n - (redisSwBefore.get(tid)?.n ?? 0);
  for (const ws of sockets) ws.close();
  procs.killAll();
  return {
    root,
    wakeupsPerS: wakeupsPerS.map((w) => Math.round(w * 10) / 10),
    cpuMsPerMin: pids.map((_, i) => Math.round(((cpuAfter[i]! - cpuBefore[i]!) / 1e6 / elapsedS) * 60 * 10) / 10),
    redisCmdsPerS: Math.round((redisCmds / elapsedS) * 10) / 10,
    redisWakeupsPerS: Math.round((redisSw / elapsedS) * 10) / 10,
    redisCpuMsPerMin: Math.round(((redisCpuAfter - redisCpuBefore) / 1e6 / elapsedS) * 60 * 10) / 10,
    byCommand,
    byThread: Object.fromEntries(Object.entries(byThread).map(([k, v]) => [k, Math.round((v / pids.length) * 10) / 10])),
  };
}

const roots = f.roots!.split(",");
try {
  for (let r = 0; r < Number(f.runs); r++) {
    for (const root of roots) {
      const result = await run(root);
      if (!f.threads) delete (result as Partial<Run>).byThread;
      console.log(JSON.stringify({ procs: Number(f.procs), redis: f.redis, sockets: Number(f.sockets), seconds: Number(f.seconds), repeat: r, ...result }));
    }
  }
} finally {
  procs.shutdown();
}
