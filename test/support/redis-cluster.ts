/**
 * A real Redis Cluster for tests: six Debian `redis-server` processes on free loopback ports
 * (3 primaries, 3 replicas, `cluster-node-timeout 2000`), each in its own temp dir, created with
 * `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`. No persistence: a killed node
 * restarts empty (it keeps its nodes.conf, so it rejoins the cluster, usually as a replica).
 */
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slotOf } from "../../src/redis/slot.ts";
import { clusterPort } from "./ports.ts";

export interface ClusterNode {
  port: number;
  /** SIGKILL (a crash). */
  kill(): Promise<void>;
  /** Starts the node again on its port with its nodes.conf (empty data). */
  restart(): Promise<void>;
  /**
   * Sends a signal to the running node, as TestRedis does: SIGSTOP freezes it (connections stay
   * open, nothing answers: a hung primary), SIGCONT resumes it. The cluster marks a frozen node
   * failed after `cluster-node-timeout` (2 s): resume it well within that for a stop without a failover.
   */
  signal(signal: "SIGSTOP" | "SIGCONT"): void;
}

export interface TestRedisCluster {
  /** `redis://127.0.0.1:P1,redis://127.0.0.1:P2,…`: every node, as REDIS_URL seeds. */
  url: string;
  nodes: ClusterNode[];
  /** Runs `redis-cli -p <port> args…` and returns its trimmed output. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** The port of the primary that owns the key's slot now. */
  primaryOf(key: string): Promise<number>;
  /** The port of a replica of the primary on `port`. */
  replicaOf(port: number): Promise<number>;
  /** Waits until every slot is served again (`cluster_state:ok` on every running node). */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Waits until the cluster marked the (killed) node on `port` as failed and moved its slots away. */
  waitFailedOver(port: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const BINARY = "redis-server";
/** `setpriv --pdeathsig KILL`: the kernel kills the node when the test process dies, however it dies. */
const PDEATHSIG = Bun.which("setpriv") ? ["setpriv", "--pdeathsig", "KILL", "--"] : [];

export async function startRedisCluster(): Promise<TestRedisCluster> {
  if (Bun.which(BINARY) === null || Bun.which("redis-cli") === null) {
    throw new Error("redis-server and redis-cli are not installed: run `apt-get install -y redis-server redis-tools`");
  }
  const dir = mkdtempSync(join(tmpdir(), "sb-cluster-"));
  const ports = Array.from({ length: 6 }, () => clusterPort());
  const children = new Map<number, Subprocess>();

  const spawn = async (port: number) => {
    const child = Bun.spawn(
      [...PDEATHSIG, BINARY, "--port", String(port), "--bind", "127.0.0.1", "--protected-mode", "no", "--save", "", "--appendonly", "no",
        "--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`, "--cluster-node-timeout", "2000",
        "--repl-diskless-sync-delay", "0", // replicas in sync at once, so a failover right after start works
        "--dir", dir, "--loglevel", "warning"],
      { stdout: "ignore", stderr: "ignore" },
    );
    children.set(port, child);
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited at start`);
      if ((await cli(port, "PING").catch(() => "")) === "PONG") return;
      await Bun.sleep(20);
    }
    throw new Error(`redis-server did not answer on port ${port} within 5 s`);
  };
  const kill = async (port: number) => {
    const child = children.get(port);
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGKILL");
    await child.exited;
  };
  const stop = async () => {
    await Promise.all(ports.map(kill));
    rmSync(dir, { recursive: true, force: true });
  };

  const waitHealthy = async (timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const running = ports.filter((p) => children.get(p)?.exitCode === null && children.get(p)?.signalCode === null);
      const states = await Promise.all(running.map((p) => cli(p, "CLUSTER", "INFO").catch(() => "")));
      if (states.every((s) => s.includes("cluster_state:ok"))) return;
      if (Date.now() > deadline) throw new Error("the test Redis Cluster did not become healthy");
      await Bun.sleep(100);
    }
  };

  try {
    await Promise.all(ports.map(spawn));
    const created = Bun.spawn(
      ["redis-cli", "--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes"],
      { stdout: "pipe", stderr: "pipe" },
    );
    if ((await created.exited) !== 0) throw new Error(`redis-cli --cluster create failed: ${await new Response(created.stderr).text()}`);
    await waitHealthy();
  } catch (error) {
    await stop();
    throw error;
  }

  const primaryOf = async (key: string) => {
    const slot = slotOf(key);
    return ownerOfSlot(await clusterNodes(ports), slot);
  };
  const replicaOf = async (port: number) => {
    const nodes = await clusterNodes(ports);
    const primary = nodes.find((n) => n.port === port && n.flags.includes("master"));
    const replica = nodes.find((n) => n.master === primary?.id && !n.flags.includes("fail"));
    if (replica === undefined) throw new Error(`no replica of ${port}`);
    return replica.port;
  };

  const waitFailedOver = async (port: number, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nodes = await clusterNodes(ports.filter((p) => p !== port)).catch(() => []);
      const dead = nodes.find((n) => n.port === port);
      if (dead !== undefined && /(^|,)fail(,|$)/.test(dead.flags) && dead.slots.length === 0) {
        await waitHealthy(Math.max(0, deadline - Date.now()));
        return;
      }
      if (Date.now() > deadline) throw new Error(`the cluster did not fail over node ${port}: ${JSON.stringify(nodes)}`);
      await Bun.sleep(100);
    }
  };

  return {
    url: ports.map((p) => `redis://127.0.0.1:${p}`).join(","),
    nodes: ports.map((port) => ({
      port,
      kill: () => kill(port),
      restart: async () => { await kill(port); await spawn(port); },
      signal: (signal) => children.get(port)?.kill(signal),
    })),
    cli: (port, ...args) => cli(port, ...args),
    primaryOf,
    replicaOf,
    waitHealthy,
    waitFailedOver,
    stop,
  };
}

interface NodeLine {
  id: string;
  port: number;
  flags: string;
  master: string;
  slots: string[];
}

async function clusterNodes(ports: number[]): Promise<NodeLine[]> {
  for (const port of ports) {
    const text = await cli(port, "CLUSTER", "NODES").catch(() => "");
    if (text === "") continue;
    return text.split("\n").filter(Boolean).map((line) => {
      const [id, addr, flags, master, , , , , ...slots] = line.split(" ");
      return { id: id!, port: Number(addr!.split("@")[0]!.split(":")[1]), flags: flags!, master: master!, slots };
    });
  }
  throw new Error("no cluster node answers CLUSTER NODES");
}

function ownerOfSlot(nodes: NodeLine[], slot: number): number {
  for (const node of nodes) {
    if (!node.flags.includes("master") || node.flags.includes("fail")) continue;
    for (const range of node.slots) {
      if (range.startsWith("[")) continue;
      const [from, to] = range.split("-").map(Number);
      if (slot >= from! && slot <= (to ?? from)!) return node.port;
    }
  }
  throw new Error(`no primary owns slot ${slot}`);
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const proc = Bun.spawn(["redis-cli", "-p", String(port), ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) throw new Error(`redis-cli -p ${port} ${args.join(" ")} exited ${code}`);
  return out.trim();
}
