/**
 * A deployment for black-box tests: one real redis-server and N Switchboard processes sharing it
 * (same SESSION_SECRET from TEST_ENV, distinct INSTANCE_IDs), started in parallel.
 */
import { startRedis, type TestRedis } from "./redis.ts";
import { loginSession, startServer, type Session, type TestServer } from "./server.ts";
import { startRedisCluster, type TestRedisCluster } from "./redis-cluster.ts";
import { startLatencyProxy, type LatencyProxy } from "./latency-proxy.ts";

export interface TestCluster {
  redis: TestRedis;
  nodes: TestServer[];
  /** Starts one more process of the deployment (e.g. to kill -9 it). */
  add(name: string, env?: Record<string, string>): Promise<TestServer>;
  /** Kills every process and Redis. */
  stop(): Promise<void>;
}

/** Limits generous enough for many test sockets from one IP and user. */
export const CLUSTER_ENV: Record<string, string> = {
  MAX_CONNECTIONS_PER_IP: "5000",
  MAX_CONNECTIONS_PER_USER: "5000",
  RATE_LIMIT_PER_S: "1000",
  RATE_LIMIT_BURST: "1000",
  // Hundreds of sockets opened at once on a busy test machine are a storm by the shedding rule
  // (docs/protocol.md): tests of other behaviour must not see 1013 for it. test/shedding.test.ts
  // covers shedding.
  SHED_LAG_MS: "0",
};

/**
 * Waits for `/readyz` 200: the process reaches Redis and the deployment registry lists it, so the
 * other machines' server API calls wait for it (/healthz, which startServer waits for, answers
 * from the moment it listens).
 */
export async function inService(server: { url: string }, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await fetch(`${server.url}/readyz`).catch(() => null))?.status !== 200) {
    if (Date.now() > deadline) throw new Error(`${server.url}/readyz did not answer 200 within ${timeoutMs / 1000} s`);
    await Bun.sleep(20);
  }
}

export async function startCluster(names: string[], env: Record<string, string> = {}): Promise<TestCluster> {
  const redis = await startRedis();
  const all: TestServer[] = [];
  const add = async (name: string, extra: Record<string, string> = {}) => {
    const server = await startServer({ ...CLUSTER_ENV, ...env, ...extra, REDIS_URL: redis.url, INSTANCE_ID: name });
    all.push(server);
    await inService(server);
    return server;
  };
  try {
    const nodes = await Promise.all(names.map((name) => add(name)));
    return {
      redis,
      nodes,
      add,
      async stop() {
        for (const server of all) server.kill();
        await Promise.all(all.map((s) => s.proc.exited));
        await redis.stop();
      },
    };
  } catch (error) {
    for (const server of all) server.kill();
    await redis.stop();
    throw error;
  }
}

/** One Redis; process A next to it, process B behind a link that adds `delayMs` each way (another region, simulated). */
export interface NearAndFar {
  redis: TestRedis;
  /** B's link: `setDelay`, `dropAll`. */
  far: LatencyProxy;
  A: TestServer;
  B: TestServer;
  stop(): Promise<void>;
}

export async function startNearAndFar(delayMs: number, names: [string, string], env: { A?: Record<string, string>; B?: Record<string, string> } = {}): Promise<NearAndFar> {
  const redis = await startRedis();
  const far = await startLatencyProxy({ upstream: redis.port, delayMs });
  const [A, B] = await Promise.all([
    startServer({ ...CLUSTER_ENV, ...env.A, REDIS_URL: redis.url, INSTANCE_ID: names[0] }),
    startServer({ ...CLUSTER_ENV, ...env.B, REDIS_URL: far.url("redis"), INSTANCE_ID: names[1] }, { startTimeoutMs: 30_000 }),
  ]);
  await Promise.all([inService(A, 20_000), inService(B, 20_000)]);
  return {
    redis,
    far,
    A,
    B,
    async stop() {
      A.kill();
      B.kill();
      await far.close();
      await redis.stop();
    },
  };
}

export interface ClusterDeployment {
  redis: TestRedisCluster;
  nodes: TestServer[];
  /** alice's session on the first process. */
  session: Session;
}

/**
 * The six-node Redis Cluster and one Switchboard process per name against it (REDIS_CLUSTER=true,
 * CLUSTER_ENV, then `env`), started in parallel. Nothing is left running when a start fails.
 */
export async function startClusterDeployment(names: string[], env: Record<string, string> = {}): Promise<ClusterDeployment> {
  const redis = await startRedisCluster();
  const started: TestServer[] = [];
  try {
    const base = { ...CLUSTER_ENV, REDIS_CLUSTER: "true", REDIS_URL: redis.url, LOG_LEVEL: "info", ...env };
    const start = async (name: string) => {
      const server = await startServer({ ...base, INSTANCE_ID: name });
      started.push(server);
      return server;
    };
    const nodes = await Promise.all(names.map(start));
    return { redis, nodes, session: await loginSession(nodes[0]!, "alice") };
  } catch (error) {
    for (const server of started) server.kill();
    await redis.stop();
    throw error;
  }
}
