/**
 * One benchmark run of one scenario against one target: start Redis and the servers, drive them
 * with generator workers, collect the numbers, kill everything. Each function returns a flat
 * record of metrics (the JSON line of the run).
 */
import type { TargetName } from "./dialects.ts";
import { Histogram } from "./histogram.ts";
import { cpuMsOf, machineBusyMs, onCpuNsBetween, procs, redisCommandStats, rssKb, spawnWorker, startRedis, startServers, threadsOnCpuNs, type Endpoint, type Redis, type Servers, type StartOptions, type Worker } from "./cluster.ts";
import { nowUs } from "./ws.ts";

export interface RunOptions {
  procs: number;
  genProcs: number;
  duration: number; // s
  /** Seconds of load before the measured window; absent: the scenario's own (`warmupFor`). */
  warmup?: number;
  window: number;
  lagCap: number;
  payload: number;
  /** Publisher sockets per topic (1 = the single publisher). */
  publishers: number;
  /** Publisher sockets at most (0: one per topic and publisher). */
  pubConns: number;
  start: StartOptions;
}

export type Metrics = Record<string, number | string | Record<string, number> | undefined>;

/**
 * The warm-up of the fan-out and rooms scenarios when --warmup is not given. Rooms: 8 s. With
 * 10,000 topics both servers are still compiling their hot paths (JSC's JIT) seconds after the
 * load starts: between 2 and 8 s of warm-up the CPU per delivery fell ~20 % for round eight's
 * Switchboard and for the limit alike (12 % with round nine's subscriber), issue 17: bench/README.md,
 * "Round nine"; so a 2 s warm-up measured compilation, not the steady state a
 * long-running server is in. The same for every target.
 */
export function warmupFor(o: RunOptions, rooms: boolean): number {
  return o.warmup ?? (rooms ? 8 : 2);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (cpuMs: number, wallMs: number) => Math.round((cpuMs / wallMs) * 1000) / 10;

/**
 * The machine's CPU (200 = both cores) that none of the run's own processes used: someone else's
 * work during the measured window. Above ~20 the run's numbers say more about that work than about
 * the target (round ten); the table flags it.
 */
function othersCpu(machine: number | undefined, own: (number | undefined)[]): number | undefined {
  if (machine === undefined) return undefined;
  return Math.max(0, Math.round(machine - own.reduce<number>((a, b) => a + (b ?? 0), 0)));
}
const merge = (into: Record<string, number>, from: Record<string, number> | undefined) => {
  for (const [k, v] of Object.entries(from ?? {})) into[k] = (into[k] ?? 0) + v;
  return into;
};

/** Starts Redis + servers, runs `body`, and always kills what it started. */
async function withCluster<T>(target: TargetName, n: number, opts: StartOptions, body: (s: Servers, redis: Redis) => Promise<T>): Promise<T> {
  const redis = await startRedis();
  let servers: Servers | undefined;
  try {
    servers = await startServers(target, n, redis.url, opts);
    return await body(servers, redis);
  } finally {
    for (const p of servers?.procs ?? []) {
      if (opts.bunFlags?.some((f) => f.startsWith("--cpu-prof"))) {
        p.kill("SIGTERM"); // lets Bun write the profile
        await Promise.race([p.exited, sleep(5000)]);
      }
      procs.kill(p);
    }
    procs.kill(redis.proc);
  }
}

interface CpuSample<P> {
  /** `cpuMsOf` of each pid, then the machine's busy ms. */
  ms: number[];
  /** `threadsOnCpuNs` of each pid. */
  threads: Map<number, number>[];
  probe?: P;
}

/**
 * Samples the CPU of the given pids at two absolute times. `pct()`: each pid's CPU% between them,
 * then the whole machine's busy CPU (200 = both cores), which shows how much other work shared the
 * run. `onCpuNs(i)`: the exact ns pids[i] spent on CPU between them (all threads, or the main
 * thread). `probe`, when given, is read at each sample right after the CPU (e.g. Redis's
 * commandstats); `sampled` resolves once both samples are in.
 */
function cpuSampler<P = never>(pids: number[], fromUs: number, toUs: number, probe?: () => Promise<P>) {
  let a: CpuSample<P> | undefined;
  let b: CpuSample<P> | undefined;
  const take = async (): Promise<CpuSample<P>> => {
    const s: CpuSample<P> = { ms: [...pids.map((p) => cpuMsOf(p)), machineBusyMs()], threads: pids.map(threadsOnCpuNs) };
    if (probe) s.probe = await probe();
    return s;
  };
  const at = (us: number) => new Promise<CpuSample<P>>((resolve, reject) => setTimeout(() => take().then(resolve, reject), Math.max(0, (us - nowUs()) / 1000)));
  const sampled = Promise.all([at(fromUs).then((s) => void (a = s)), at(toUs).then((s) => void (b = s))]).then(() => {});
  sampled.catch(() => {}); // awaited by whoever needs the probe; a run that fails first must not leave it unhandled
  return {
    sampled,
    pct: () => [...pids, -1].map((_, i) => pct((b?.ms[i] ?? NaN) - (a?.ms[i] ?? NaN), (toUs - fromUs) / 1000)),
    onCpuNs: (i: number, main = false) => (a && b ? onCpuNsBetween(pids[i]!, a.threads[i]!, b.threads[i]!, main) : NaN),
    probes: () => [a?.probe, b?.probe] as const,
  };
}

async function spawnSubs(servers: Servers, target: TargetName, total: number, roomSize: number, genProcs: number, hosts?: string[]): Promise<Worker[]> {
  const workers: Worker[] = [];
  const per = Math.ceil(total / genProcs);
  for (let g = 0, first = 0; first < total; g++, first += per) {
    const w = spawnWorker();
    const eps: Endpoint[] = hosts ? servers.endpoints.map((e) => ({ ...e, host: hosts[g % hosts.length]! })) : servers.endpoints;
    w.send({ cmd: "init", init: { role: "subs", target, servers: eps, cookie: servers.cookie, first, count: Math.min(per, total - first), roomSize, topicPrefix: "room:bench", concurrency: 200 } });
    workers.push(w);
  }
  return workers;
}

async function awaitReady(workers: Worker[], timeoutMs: number) {
  const ready = await Promise.all(workers.map((w) => w.next("ready", timeoutMs)));
  return {
    ok: ready.reduce((a, r) => a + r.ok, 0),
    failed: ready.reduce((a, r) => a + r.failed, 0),
    closeCodes: ready.reduce((a, r) => merge(a, r.closeCodes), {} as Record<string, number>),
    errors: ready.reduce((a, r) => merge(a, r.errors), {} as Record<string, number>),
  };
}

/**
 * Fan-out (roomSize = subs: one topic) and rooms (many topics of `roomSize`): subscribers spread
 * over the processes, one publisher connection per topic (round-robin over processes), at `rate`
 * messages/s in total or as fast as the window allows (`rate` 0).
 */
export async function runFanout(target: TargetName, o: RunOptions, subs: number, roomSize: number, rate: number): Promise<Metrics> {
  const topics = Math.ceil(subs / roomSize);
  return withCluster(target, o.procs, o.start, async (servers, redis) => {
    const subsW = await spawnSubs(servers, target, subs, roomSize, o.genProcs);
    const pub = spawnWorker();
    try {
      const ready = await awaitReady(subsW, 120_000);
      pub.send({ cmd: "init", init: { role: "pub", target, servers: servers.endpoints, cookie: servers.cookie, topics, publishers: o.publishers, pubConns: o.pubConns, topicPrefix: "room:bench", rate, window: o.window, lagCap: o.lagCap, payloadBytes: o.payload } });
      const pubReady = await pub.next("ready", 30_000);
      if (pubReady.failed) throw new Error(`publisher could not connect: ${JSON.stringify(pubReady.closeCodes)}`);

      // Relay the subscribers' progress (per topic: the lowest seq every open subscriber has)
      // to the publisher, so that "as fast as possible" never runs away from the slowest one.
      const latest = subsW.map(() => null as null | { topicBase: number; minLast: number[] });
      subsW.forEach((w, i) =>
        w.on("progress", (m) => {
          latest[i] = m;
          const minLast = new Array<number>(topics).fill(-1);
          for (const l of latest) {
            if (!l) continue;
            l.minLast.forEach((v, k) => {
              const t = l.topicBase + k;
              if (v >= 0 && (minLast[t]! < 0 || v < minLast[t]!)) minLast[t] = v;
            });
          }
          pub.send({ cmd: "progress", minLast });
        }),
      );

      const t0 = nowUs() + 100_000;
      const fromUs = t0 + warmupFor(o, roomSize < subs) * 1e6;
      const toUs = fromUs + o.duration * 1e6;
      const pids = servers.procs.map((p) => p.pid);
      const cpu = cpuSampler([...pids, redis.proc.pid], fromUs, toUs);
      for (const w of subsW) w.send({ cmd: "start", fromUs, toUs });
      await sleep((t0 - nowUs()) / 1000);
      pub.send({ cmd: "start", fromUs, toUs });
      const pr = await pub.next("result", (toUs - nowUs()) / 1000 + 15_000);
      for (const w of subsW) w.send({ cmd: "finish", expected: pr.sent, refused: pr.refused, deadlineUs: nowUs() + 5_000_000 });
      const rs = await Promise.all(subsW.map((w) => w.next("result", 15_000)));
      const hist = new Histogram();
      for (const r of rs) hist.merge(r.hist);
      const ack = new Histogram().merge(pr.ackHist);
      const cpus = cpu.pct();
      const sum = (k: string) => rs.reduce((a, r) => a + r[k], 0);
      const lat = hist.summaryMs();
      const published = (pr.sent as number[]).reduce((a, b) => a + b, 0);
      return {
        subs, topics, procs: o.procs, publishers: o.publishers, offered: rate || "max",
        connected: ready.ok, connectFailed: ready.failed,
        published, publishedPerS: Math.round(published / ((toUs - t0) / 1e6)),
        deliveriesPerS: Math.round(sum("inWindow") / o.duration),
        p50: lat.p50, p90: lat.p90, p99: lat.p99, max: lat.max,
        ackP50: ack.summaryMs().p50, ackP99: ack.summaryMs().p99,
        lost: sum("lost"), duplicated: sum("dup"), reordered: sum("reordered"),
        closedDuring: sum("closedAfterReady"),
        errors: [ready.errors, pr.errors, ...rs.map((r) => r.errors)].reduce((a, e) => merge(a, e), {} as Record<string, number>),
        closeCodes: rs.reduce((a, r) => merge(a, r.closeCodes), merge({}, ready.closeCodes)),
        genCpu: rs.map((r) => pct(r.cpu?.cpuMs, r.cpu?.wallMs)).join("+"),
        pubCpu: pct(pr.cpu?.cpuMs, pr.cpu?.wallMs),
        serverCpu: cpus.slice(0, -2).join("+"),
        redisCpu: cpus.at(-2),
        machineCpu: cpus.at(-1),
        othersCpu: othersCpu(cpus.at(-1), [...cpus.slice(0, -1), ...rs.map((r) => pct(r.cpu?.cpuMs, r.cpu?.wallMs)), pct(pr.cpu?.cpuMs, pr.cpu?.wallMs)]),
        // Server CPU (all processes, Redis excluded) per delivery: less sensitive to a noisy
        // machine than the throughput, since time spent descheduled is not counted.
        serverNsPerDelivery: Math.round((cpus.slice(0, -2).reduce((a, b) => a + b, 0) / 100) * o.duration * 1e9 / Math.max(1, sum("inWindow"))),
      };
    } finally {
      for (const w of [...subsW, pub]) w.send({ cmd: "exit" });
      await sleep(50);
      for (const w of [...subsW, pub]) procs.kill(w.proc);
    }
  });
}

/** Idle: RSS per authenticated, subscribed connection on one process. */
export async function runIdle(target: TargetName, o: RunOptions, conns: number): Promise<Metrics> {
  return withCluster(target, 1, o.start, async (servers) => {
    const pid = servers.procs[0]!.pid;
    await sleep(500);
    const before = rssKb(pid);
    // ≤ 9,000 sockets per generator process (20,000 open files each), each process towards its
    // own destination address so that each has its own ephemeral-port range.
    const gens = Math.max(o.genProcs, Math.ceil(conns / 9000));
    const hosts = Array.from({ length: gens }, (_, i) => `127.0.0.${i + 1}`);
    const t0 = performance.now();
    const workers = await spawnSubs(servers, target, conns, conns, gens, hosts);
    try {
      const ready = await awaitReady(workers, 180_000);
      const connectS = (performance.now() - t0) / 1000;
      await sleep(2000);
      const after = rssKb(pid);
      return {
        conns, connected: ready.ok, connectFailed: ready.failed,
        closeCodes: ready.closeCodes, errors: ready.errors,
        rssBeforeMb: Math.round(before / 102.4) / 10, rssAfterMb: Math.round(after / 102.4) / 10,
        kbPerConn: Math.round(((after - before) / Math.max(ready.ok, 1)) * 100) / 100,
        connectSeconds: Math.round(connectS * 10) / 10,
      };
    } finally {
      for (const w of workers) w.send({ cmd: "exit" });
      await sleep(100);
      for (const w of workers) procs.kill(w.proc);
    }
  });
}

/** Connect: authenticated handshakes per second on one process, each socket closed once ready. */
export async function runConnect(target: TargetName, o: RunOptions, concurrency: number): Promise<Metrics> {
  return withCluster(target, 1, o.start, async (servers) => {
    const workers = Array.from({ length: o.genProcs }, () => spawnWorker());
    try {
      for (const [g, w] of workers.entries()) {
        const eps = servers.endpoints.map((e) => ({ ...e, host: `127.0.0.${g + 1}` }));
        w.send({ cmd: "init", init: { role: "connect", target, servers: eps, cookie: servers.cookie, concurrency } });
      }
      await awaitReady(workers, 30_000);
      const fromUs = nowUs() + 50_000;
      const toUs = fromUs + o.duration * 1e6;
      const serverPid = servers.procs[0]!.pid;
      const cpu = cpuSampler([serverPid], fromUs, toUs);
      const sys0 = cpuMsOf(serverPid, "system");
      const all0 = cpuMsOf(serverPid);
      for (const w of workers) w.send({ cmd: "start", fromUs, toUs });
      const rs = await Promise.all(workers.map((w) => w.next("result", o.duration * 1000 + 10_000)));
      const hist = new Histogram();
      for (const r of rs) hist.merge(r.hist);
      const lat = hist.summaryMs();
      return {
        concurrency: concurrency * o.genProcs,
        handshakesPerS: Math.round(rs.reduce((a, r) => a + r.done, 0) / o.duration),
        failed: rs.reduce((a, r) => a + r.failed, 0),
        p50: lat.p50, p99: lat.p99, max: lat.max,
        closeCodes: rs.reduce((a, r) => merge(a, r.closeCodes), {} as Record<string, number>),
        errors: rs.reduce((a, r) => merge(a, r.errors), {} as Record<string, number>),
        genCpu: rs.map((r) => pct(r.cpu?.cpuMs, r.cpu?.wallMs)).join("+"),
        serverCpu: cpu.pct()[0],
        machineCpu: cpu.pct()[1],
        othersCpu: othersCpu(cpu.pct()[1], [cpu.pct()[0], ...rs.map((r) => pct(r.cpu?.cpuMs, r.cpu?.wallMs))]),
        serverSystemShare: Math.round(((cpuMsOf(serverPid, "system") - sys0) / Math.max(1, cpuMsOf(serverPid) - all0)) * 100) / 100,
        serverUsPerHandshake: Math.round(((cpu.pct()[0]! / 100) * o.duration * 1e6) / Math.max(1, rs.reduce((a, r) => a + r.done, 0))),
      };
    } finally {
      for (const w of workers) w.send({ cmd: "exit" });
      await sleep(50);
      for (const w of workers) procs.kill(w.proc);
    }
  });
}

type CommandStats = Awaited<ReturnType<typeof redisCommandStats>>;

/**
 * CPU per acknowledged publish in the sample window, µs: the publishing server (all threads, and
 * its main thread), Redis, the publisher, their sum (`cpuUsPerPub`: at window 1 on this VM they
 * take turns on one vCPU, so the round trip is about that sum), and the other server processes
 * (their timers, not on the path). `roundTripUs`: the window over its acks, the mean round trip.
 * From Redis's commandstats: the command that took most of its time (the one carrying the publish:
 * FCALL for Switchboard, PUBLISH for the references), its own µs per publish, and the commands run
 * per publish (a Function's inner commands included).
 * `cpu` sampled pids [publishing server, Redis, publisher, ...other servers].
 */
function cpuPerPublish(cpu: ReturnType<typeof cpuSampler<CommandStats>>, servers: number, acks: number, sampleUs: number): Metrics {
  acks = Math.max(1, acks); // none: the run failed, and says so in its errors
  const us = (ns: number) => Math.round((ns / 1000 / acks) * 10) / 10;
  const per = { server: us(cpu.onCpuNs(0)), redis: us(cpu.onCpuNs(1)), pub: us(cpu.onCpuNs(2)) };
  const others = Array.from({ length: servers - 1 }, (_, k) => cpu.onCpuNs(3 + k)).reduce((x, y) => x + y, 0);
  const [a = {}, b = {}] = cpu.probes();
  const delta = Object.entries(b).filter(([name]) => name !== "info").map(([name, v]) => ({ name, calls: v.calls - (a[name]?.calls ?? 0), usec: v.usec - (a[name]?.usec ?? 0) }));
  const top = delta.reduce<(typeof delta)[number] | undefined>((m, d) => (!m || d.usec > m.usec ? d : m), undefined);
  const pcts = cpu.pct();
  return {
    sampleS: sampleUs / 1e6, sampledAcks: acks, roundTripUs: Math.round((sampleUs / acks) * 10) / 10,
    serverUsPerPub: per.server, serverMainUsPerPub: us(cpu.onCpuNs(0, true)), redisUsPerPub: per.redis, pubUsPerPub: per.pub,
    cpuUsPerPub: Math.round((per.server + per.redis + per.pub) * 10) / 10,
    // The sum counted in the publisher's own CPU per publish, the same work for the limit and for
    // Switchboard: the VM's speed in that minute divides out (bench/README.md, "publish").
    cpuOverPub: Math.round(((per.server + per.redis + per.pub) / per.pub) * 100) / 100,
    otherServersUsPerPub: us(others),
    redisCmd: top?.name, redisCmdUsPerPub: top ? Math.round((top.usec / acks) * 10) / 10 : undefined,
    redisCallsPerPub: Math.round((delta.reduce((x, d) => x + d.calls, 0) / acks) * 100) / 100,
    serverCpu: pcts.slice(0, 1).concat(pcts.slice(3, -1)).join("+"), redisCpu: pcts[1], machineCpu: pcts.at(-1),
    othersCpu: othersCpu(pcts.at(-1), pcts.slice(0, -1)),
  };
}

/**
 * Publish path: one publisher, one publish in flight at a time, latency publish → ack over the
 * whole run; the CPU per publish of each process over the middle half of it (`cpuPerPublish`),
 * away from the start (JIT warm-up) and the end.
 */
export async function runPublishPath(target: TargetName, o: RunOptions): Promise<Metrics> {
  return withCluster(target, o.procs, o.start, async (servers, redis) => {
    const pub = spawnWorker();
    try {
      pub.send({ cmd: "init", init: { role: "pub", target, servers: servers.endpoints, cookie: servers.cookie, topics: 1, publishers: 1, topicPrefix: "room:bench", rate: 0, window: 1, lagCap: 1e15, payloadBytes: o.payload } });
      const ready = await pub.next("ready", 30_000);
      if (ready.failed) throw new Error(`publisher could not connect: ${JSON.stringify(ready.closeCodes)}`);
      const fromUs = nowUs() + 50_000;
      const toUs = fromUs + o.duration * 1e6;
      const sampleFromUs = fromUs + o.duration * 0.25e6;
      const sampleToUs = toUs - o.duration * 0.25e6;
      // The publisher's socket goes to process 0 (the worker's first endpoint).
      const pids = [servers.procs[0]!.pid, redis.proc.pid, pub.proc.pid, ...servers.procs.slice(1).map((p) => p.pid)];
      const cpu = cpuSampler(pids, sampleFromUs, sampleToUs, () => redisCommandStats(redis.port));
      pub.send({ cmd: "start", fromUs, toUs, countFromUs: sampleFromUs, countToUs: sampleToUs });
      const pr = await pub.next("result", o.duration * 1000 + 15_000);
      await cpu.sampled;
      const lat = new Histogram().merge(pr.ackHist).summaryMs();
      return {
        acked: pr.acked, publishesPerS: Math.round(pr.acked / o.duration),
        p50: lat.p50, p90: lat.p90, p99: lat.p99, max: lat.max,
        errors: pr.errors, pubCpu: pct(pr.cpu?.cpuMs, pr.cpu?.wallMs),
        ...cpuPerPublish(cpu, servers.procs.length, pr.ackedInCount, sampleToUs - sampleFromUs),
      };
    } finally {
      pub.send({ cmd: "exit" });
      await sleep(50);
      procs.kill(pub.proc);
    }
  });
}
