/**
 * A short fixed-seed run of the chaos checker (bench/chaos.ts, bench/CHAOS.md), so that it cannot
 * rot: its own Redis and three servers, eight clients, publishers over WebSocket and the HTTP API,
 * a server killed -9 and restarted, Redis stopped for less than REDIS_COMMAND_TIMEOUT_MS. Every
 * invariant holds and the report says so.
 */
import { expect, test } from "bun:test";

const ROOT = new URL("..", import.meta.url).pathname;

test("the chaos checker: a fixed-seed run with a server killed and a short Redis stall finds no violation", async () => {
  const proc = Bun.spawn(
    ["bun", "bench/chaos.ts", "--seed", "13", "--duration", "7", "--faults", "kill,redis-stop-short", "--fault-gap", "1.5-3", "--client-procs", "2", "--clients", "4", "--rate", "30"],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: { ...process.env } },
  );
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const report = `${out}\n${err}`;
  expect(report).toContain("OK: no violation (seed 13)");
  expect(report).toMatch(/faults: .*(kill|redis-stop-short)×/);
  expect(report).toMatch(/stats: messages=[1-9]\d+ /);
  expect(code).toBe(0);
}, 25_000);
