/**
 * Starting and stopping what a benchmark run needs: redis-server, the servers under test
 * (limit, Socket.IO, Switchboard: N processes each on its own port), and generator workers.
 *
 * Every child is registered in `procs`, killed at the end of its run, and also handed to a
 * reaper process that kills it if this orchestrator dies without cleaning up (kill -9, crash).
 */
import type { Subprocess } from "bun";
import { readdirSync, readFileSync } from "node:fs";
import type { TargetName } from "./dialects.ts";

export const ROOT = new URL("../..", import.meta.url).pathname;
export const BENCH = new URL("..", import.meta.url).pathname;

export interface Endpoint {
  host: string;
  port: number;
}

class Procs {
  private live = new Set<Subprocess>();
  private reaper: Subprocess | null = null;

  add<T extends Subprocess>(p: T): T {
    this.live.add(p);
    this.reaper ??= Bun.spawn(["bun", `${BENCH}lib/reaper.ts`], { ipc() {}, stdio: ["ignore", "ignore", "inherit"], serialization: "json" });
    this.reaper.send({ pid: p.pid });
    p.exited.then(() => this.live.delete(p));
    return p;
  }

  kill(p: Subprocess | undefined): void {
    if (!p) return;
    try {
      p.kill("SIGKILL");
    } catch {}
    this.live.delete(p);
  }

  killAll(): void {
    for (const p of this.live) this.kill(p);
    this.live.clear();
  }

  /** Kills everything including the reaper (the end of the orchestrator). */
  shutdown(): void {
    this.killAll();
    if (this.reaper) this.kill(this.reaper);
    this.reaper = null;
  }
}

export const procs = new Procs();

export async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, proc?: Subprocess): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (proc && proc.exitCode !== null) throw new Error(`${what} exited with code ${proc.exitCode}`);
    try {
      if (await check()) return;
    } catch {}
    await sleep(50);
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms`);
}

const httpOk = (url: string) => async () => (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;

export interface Redis {
  port: number;
  url: string;
  proc: Subprocess;
}

export async function startRedis(): Promise<Redis> {
  const port = await freePort();
  const proc = procs.add(
    Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"], {
      stdio: ["ignore", "ignore", "inherit"],
    }),
  );
  await waitFor(
    "redis-server",
    async () => {
      const sock = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      sock.end();
      return true;
    },
    5000,
    proc,
  );
  return { port, url: `redis://127.0.0.1:${port}`, proc };
}

export interface Servers {
  target: TargetName;
  endpoints: Endpoint[];
  procs: Subprocess[];
  /** The session cookie (`name=value`) subscribers send on the upgrade (Switchboard only). */
  cookie?: string;
}

export const SWITCHBOARD_SECRET = "bench-session-secret-0123456789abcdef-0123456789";
export const SWITCHBOARD_API_KEY = "bench-api-key-0123456789";

/** Env for a Switchboard process: generous caps so that the bench measures, not throttles. */
function switchboardEnv(port: number, redisUrl: string, i: number, extra: Record<string, string>): Record<string, string> {
  return {
    ...(process.env as Record<string, string>),
    PORT: String(port),
    HOST: "0.0.0.0",
    REDIS_URL: redisUrl,
    SESSION_SECRET: SWITCHBOARD_SECRET,
    API_KEY: SWITCHBOARD_API_KEY,
    USERS: "alice:alice-password,bob:bob-password",
    INSTANCE_ID: `bench-${i}`,
    MAX_CONNECTIONS: "100000",
    MAX_CONNECTIONS_PER_IP: "100000",
    MAX_CONNECTIONS_PER_USER: "100000",
    RATE_LIMIT_PER_S: "1000000",
    RATE_LIMIT_BURST: "1000000",
    // SPEC §8 budgets: one bench user holds every socket and creates every room.
    MAX_SUBSCRIPTIONS_PER_USER: "1000000",
    TOPIC_CREATIONS_PER_MIN: "1000000",
    BACKPRESSURE_LIMIT_BYTES: String(64 * 1024 * 1024),
    IDLE_TIMEOUT_S: "120",
    DRAIN_MS: "0",
    LOG_LEVEL: "warn",
    ...extra,
  };
}

export interface StartOptions {
  /** Extra argv for bun before the entry (e.g. `--cpu-prof`). */
  bunFlags?: string[];
  env?: Record<string, string>;
  /** The Switchboard checkout to run (default: this repository). */
  root?: string;
  /** Extra environment for Socket.IO servers (e.g. SIO_RECOVERY=1). */
  sioEnv?: Record<string, string>;
}

export async function startServers(target: TargetName, n: number, redisUrl: string, opts: StartOptions = {}): Promise<Servers> {
  const endpoints: Endpoint[] = [];
  const started: Subprocess[] = [];
  for (let i = 0; i < n; i++) {
    const port = await freePort();
    const stdio: ["ignore", "ignore", "inherit"] = ["ignore", "ignore", "inherit"];
    let cmd: string[];
    let env: Record<string, string>;
    if (target === "limit" || target === "limit-spec") {
      cmd = ["bun", ...(opts.bunFlags ?? []), `${BENCH}servers/limit.ts`];
      env = { ...(process.env as Record<string, string>), PORT: String(port), REDIS_URL: redisUrl, ...(target === "limit-spec" ? { LIMIT_FRAME: "spec" } : {}) };
    } else if (target === "socketio") {
      cmd = ["node", `${BENCH}servers/socketio.mjs`];
      env = { ...(process.env as Record<string, string>), PORT: String(port), REDIS_URL: redisUrl, ...(opts.sioEnv ?? {}) };
    } else {
      cmd = ["bun", ...(opts.bunFlags ?? []), `${opts.root ? opts.root.replace(/\/?$/, "/") : ROOT}src/server.ts`];
      env = switchboardEnv(port, redisUrl, i, opts.env ?? {});
    }
    const cwd = target === "switchboard" && opts.root ? opts.root : ROOT;
    const proc = procs.add(Bun.spawn(cmd, { cwd, env, stdio }));
    started.push(proc);
    endpoints.push({ host: "127.0.0.1", port });
  }
  for (let i = 0; i < n; i++) {
    const { port } = endpoints[i]!;
    const path = target === "switchboard" ? "/readyz" : "/";
    await waitFor(`${target} #${i}`, httpOk(`http://127.0.0.1:${port}${path}`), 20_000, started[i]);
  }
  const servers: Servers = { target, endpoints, procs: started };
  if (target === "switchboard") servers.cookie = await login(endpoints[0]!);
  return servers;
}

/** Logs alice in once; the same signed cookie is valid on every process of the deployment. */
async function login(ep: Endpoint): Promise<string> {
  const res = await fetch(`http://${ep.host}:${ep.port}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "alice", password: "alice-password" }),
  });
  if (res.status !== 200) throw new Error(`switchboard login answered ${res.status}: ${await res.text()}`);
  const set = res.headers.getSetCookie()[0];
  if (!set) throw new Error("switchboard login set no cookie");
  return set.split(";")[0]!;
}

/** Resident set size of a process in KiB (VmRSS). */
export function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

/** CPU time of a process in ms: user + system, or only system time (in the kernel: syscalls, TCP). */
export function cpuMsOf(pid: number, only?: "system"): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = only === "system" ? Number(f[12]) : Number(f[11]) + Number(f[12]);
    return (ticks * 1000) / 100; // clock ticks at USER_HZ = 100
  } catch {
    return NaN;
  }
}

/**
 * Time on CPU of each thread of a process, in ns by tid (`/proc/<pid>/task/<tid>/schedstat`, field
 * 1: the scheduler's own count, exact, where `cpuMsOf` counts in 10 ms ticks). Empty when the
 * process is gone. A thread that ends between two readings takes its time with it, so compare
 * readings thread by thread (`onCpuNsBetween`).
 */
export function threadsOnCpuNs(pid: number): Map<number, number> {
  return perThread(pid, (dir) => Number(readFileSync(`${dir}/schedstat`, "utf8").split(" ", 1)[0]));
}

/** `read(dir)` of each thread of a process by tid (`dir`: `/proc/<pid>/task/<tid>`); empty when it is gone. */
export function perThread<T>(pid: number, read: (dir: string) => T): Map<number, T> {
  const out = new Map<number, T>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {}
  for (const tid of tids) {
    try {
      out.set(Number(tid), read(`/proc/${pid}/task/${tid}`));
    } catch {} // the thread ended meanwhile
  }
  return out;
}

/**
 * ns on CPU between two `threadsOnCpuNs` readings of process `pid`: of all its threads, or of its
 * main thread only (`main`). A thread born in between counts from zero.
 */
export function onCpuNsBetween(pid: number, a: Map<number, number>, b: Map<number, number>, main = false): number {
  if (!a.size || !b.size) return NaN;
  let ns = 0;
  for (const [tid, v] of b) if (!main || tid === pid) ns += v - (a.get(tid) ?? 0);
  return ns;
}

/** Per command of a Redis (`INFO commandstats`): calls and µs spent in the command itself, since its start. */
export async function redisCommandStats(port: number): Promise<Record<string, { calls: number; usec: number }>> {
  const stats: Record<string, { calls: number; usec: number }> = {};
  for (const m of (await redisInfo(port, "commandstats")).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    stats[m[1]!] = { calls: Number(m[2]), usec: Number(m[3]) };
  }
  return stats;
}

/** `INFO <section>` over a raw socket of its own (one short connection, no client library). */
export function redisInfo(port: number, section: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`redis-server :${port}: no INFO ${section} within 2 s`)), 2000);
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (s) => void s.write(`INFO ${section}\r\n`),
        data(s, chunk) {
          text += chunk.toString();
          const head = /^\$(\d+)\r\n/.exec(text); // a bulk string: its length, then its bytes
          if (head && Buffer.byteLength(text) >= head[0].length + Number(head[1])) {
            clearTimeout(timer);
            s.end();
            resolve(text.slice(head[0].length));
          }
        },
        error: (_s, e) => reject(e),
      },
    }).catch(reject);
  });
}

/** Busy CPU time of the whole machine in ms (all cores; /proc/stat minus idle and iowait). */
export function machineBusyMs(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return ((total - f[3]! - f[4]!) * 1000) / 100;
}

// ------------------------------------------------------------------ workers

export interface Worker {
  proc: Subprocess;
  send(m: unknown): void;
  /** Resolves with the next message whose `ev` is `ev`. */
  next(ev: string, timeoutMs: number): Promise<any>;
  on(ev: string, fn: (m: any) => void): void;
}

export function spawnWorker(entry = "worker.ts"): Worker {
  const waiting = new Map<string, ((m: any) => void)[]>();
  const queued = new Map<string, any[]>();
  const listeners = new Map<string, (m: any) => void>();
  const proc = procs.add(
    Bun.spawn(["bun", `${BENCH}${entry}`], {
      cwd: ROOT,
      stdio: ["ignore", "inherit", "inherit"],
      serialization: "json",
      ipc(m: any) {
        const l = listeners.get(m.ev);
        if (l) return l(m);
        const w = waiting.get(m.ev);
        if (w && w.length) w.shift()!(m);
        else queued.set(m.ev, [...(queued.get(m.ev) ?? []), m]);
      },
    }),
  );
  return {
    proc,
    send: (m) => {
      try {
        proc.send(m);
      } catch {}
    },
    on: (ev, fn) => listeners.set(ev, fn),
    next(ev, timeoutMs) {
      const q = queued.get(ev);
      if (q && q.length) return Promise.resolve(q.shift());
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`worker ${proc.pid}: no "${ev}" within ${timeoutMs} ms`)), timeoutMs);
        proc.exited.then((code) => {
          clearTimeout(t);
          reject(new Error(`worker ${proc.pid} exited (${code}) before "${ev}"`));
        });
        waiting.set(ev, [
          ...(waiting.get(ev) ?? []),
          (m) => {
            clearTimeout(t);
            resolve(m);
          },
        ]);
      });
    },
  };
}
