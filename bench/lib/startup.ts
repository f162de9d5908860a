/**
 * The `startup` scenario: spawn → first `200` from the readiness path, polled every millisecond.
 * Switchboard runs without REDIS_URL (embedded broker, demo users: the development start-up);
 * the reference is a bare `Bun.serve` (servers/bare.ts). Socket.IO is not measured (n/a).
 * Each run starts the process `starts` times and reports the median, best and worst, and the
 * server's own CPU until ready (all its threads; the background password hashing included).
 */
import { BENCH, ROOT, freePort, procs, cpuMsOf } from "./cluster.ts";
import type { TargetName } from "./dialects.ts";
import type { Metrics, RunOptions } from "./scenarios.ts";
import { median } from "./histogram.ts";

async function startOnce(target: TargetName, o: RunOptions): Promise<{ ms: number; cpuMs: number }> {
  const port = await freePort();
  const root = target === "switchboard" && o.start.root ? o.start.root.replace(/\/?$/, "/") : ROOT;
  const entry = target === "switchboard" ? `${root}src/server.ts` : `${BENCH}servers/bare.ts`;
  const env: Record<string, string> = { ...(process.env as Record<string, string>), PORT: String(port), LOG_LEVEL: "warn", ...o.start.env };
  delete env.REDIS_URL;
  delete env.NODE_ENV;
  const path = target === "switchboard" ? "/readyz" : "/";
  const began = performance.now();
  const proc = procs.add(Bun.spawn(["bun", ...(o.start.bunFlags ?? []), entry], { cwd: root, env, stdio: ["ignore", "ignore", "inherit"] }));
  try {
    for (;;) {
      if (performance.now() - began > 20_000) throw new Error(`${target} not ready within 20 s`);
      if (proc.exitCode !== null) throw new Error(`${target} exited with code ${proc.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.status === 200, () => false);
      if (ok) return { ms: performance.now() - began, cpuMs: cpuMsOf(proc.pid) };
      await Bun.sleep(1);
    }
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

export async function runStartup(target: TargetName, o: RunOptions, starts: number): Promise<Metrics> {
  if (target === "socketio") return { note: "n/a" };
  const times: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < starts; i++) {
    const r = await startOnce(target, o);
    times.push(r.ms);
    cpu.push(r.cpuMs);
  }
  return { readyMs: median(times), p50: median(times), max: Math.max(...times), min: Math.min(...times), cpuMsToReady: median(cpu), starts };
}
