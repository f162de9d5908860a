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
  /**
   * Adds an empty primary (a 7th, an 8th node), as `redis-cli --cluster add-node` does: a new
   * `redis-server`, `CLUSTER MEET` to a node of the cluster, done once every running node lists it
   * as a primary. It owns no slot until some are migrated to it. Returns its port (also in `nodes`).
   */
  addPrimary(): Promise<number>;
  /**
   * Moves slots live to the primary on `to`, one slot after the other, in the order of
   * `redis-cli --cluster reshard` (see `migrateSlot`); the cluster serves commands all along.
   */
  migrateSlots(slots: number[], to: number, options?: MigrateOptions): Promise<MigrationReport>;
  /** The slot of a key (its hash tag's when it has one). */
  slotOf(key: string): number;
  /** The ports of the primaries that own slots now. */
  primaries(): Promise<number[]>;
  stop(): Promise<void>;
}

export interface MigrateOptions {
  /** Keys per `MIGRATE … KEYS` (redis-cli's `--cluster-pipeline`, 10 by default there). */
  batch?: number;
  /**
   * A pause after the slot is marked MIGRATING/IMPORTING and after each MIGRATE batch, so that
   * traffic meets the slot with its keys split between the two nodes (-ASK, -TRYAGAIN). 0 by default.
   */
  pauseMs?: number;
}

/** What a migration did, for a test's message: the slots moved and how many keys, and how long it took. */
export interface MigrationReport {
  slots: number;
  keys: number;
  ms: number;
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
  const nodes: ClusterNode[] = [];
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

  const running = () => ports.filter((p) => children.get(p)?.exitCode === null && children.get(p)?.signalCode === null);
  const waitHealthy = async (timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(running().map((p) => cli(p, "CLUSTER", "INFO").catch(() => "")));
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

  const handle = (port: number): ClusterNode => ({
    port,
    kill: () => kill(port),
    restart: async () => { await kill(port); await spawn(port); },
    signal: (signal) => children.get(port)?.kill(signal),
  });
  nodes.push(...ports.map(handle));

  const addPrimary = async () => {
    const port = clusterPort();
    ports.push(port);
    await spawn(port);
    nodes.push(handle(port));
    const [seed] = running();
    await cli(port, "CLUSTER", "MEET", "127.0.0.1", String(seed));
    const id = await cli(port, "CLUSTER", "MYID");
    const deadline = Date.now() + 10_000;
    for (;;) {
      const views = await Promise.all(running().map((p) => cli(p, "CLUSTER", "NODES").catch(() => "")));
      const known = views.every((v) => v.split("\n").some((l) => l.startsWith(id) && /\bmaster\b/.test(l) && !/handshake|noaddr/.test(l)));
      if (known) break;
      if (Date.now() > deadline) throw new Error(`the new node ${port} did not join the cluster within 10 s`);
      await Bun.sleep(50);
    }
    await waitHealthy();
    return port;
  };

  const migrateSlots = async (slots: number[], to: number, options: MigrateOptions = {}) => {
    const started = Date.now();
    let keys = 0;
    for (const slot of slots) keys += await migrateSlot(slot, to, options);
    return { slots: slots.length, keys, ms: Date.now() - started };
  };

  /**
   * One slot, as redis-cli's `clusterManagerMoveSlot` (Redis 7.2) does it: the target IMPORTING
   * first, then the source MIGRATING (the other order would let the source ASK to a node that does
   * not accept yet); the keys moved in batches with MIGRATE; then SETSLOT NODE on the target, on
   * the source (which drops the slot's sharded subscribers: `sunsubscribe` pushed to them), and on
   * every other primary, which would otherwise learn it by gossip. Returns the keys moved.
   */
  const migrateSlot = async (slot: number, to: number, { batch = 10, pauseMs = 0 }: MigrateOptions) => {
    const map = await clusterNodes(running());
    const from = ownerOfSlot(map, slot);
    if (from === to) return 0;
    const idOf = (port: number) => map.find((n) => n.port === port)!.id;
    await cli(to, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", idOf(from));
    await cli(from, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", idOf(to));
    if (pauseMs > 0) await Bun.sleep(pauseMs);
    let moved = 0;
    for (let round = 0; ; round++) {
      if (round > 10_000) throw new Error(`slot ${slot} from ${from} to ${to}: keys still there after 10,000 MIGRATEs`);
      const keys = (await cli(from, "CLUSTER", "GETKEYSINSLOT", String(slot), String(batch))).split("\n").filter(Boolean);
      if (keys.length === 0) break;
      const reply = await cli(from, "MIGRATE", "127.0.0.1", String(to), "", "0", "5000", "KEYS", ...keys);
      if (reply !== "OK" && reply !== "NOKEY") throw new Error(`MIGRATE of slot ${slot} from ${from} to ${to}: ${reply}`);
      moved += keys.length;
      if (pauseMs > 0) await Bun.sleep(pauseMs);
    }
    const primaries = map.filter((n) => n.flags.includes("master") && !n.flags.includes("fail")).map((n) => n.port);
    for (const port of [to, from, ...primaries.filter((p) => p !== to && p !== from)]) {
      await cli(port, "CLUSTER", "SETSLOT", String(slot), "NODE", idOf(to));
    }
    return moved;
  };

  return {
    url: ports.map((p) => `redis://127.0.0.1:${p}`).join(","),
    nodes,
    cli: (port, ...args) => cli(port, ...args),
    primaryOf,
    replicaOf,
    waitHealthy,
    waitFailedOver,
    addPrimary,
    migrateSlots,
    slotOf,
    primaries: async () => {
      const map = await clusterNodes(running());
      return map.filter((n) => n.flags.includes("master") && !n.flags.includes("fail") && n.slots.length > 0).map((n) => n.port);
    },
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
