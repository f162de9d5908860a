/**
 * The services of a deployment over Redis (REDIS_URL set): RedisBroker (its own command and
 * subscriber connections, so a slow history read never delays a publish and pub/sub traffic
 * never shares a socket with commands), and one more connection — "the data connection",
 * `createDataConnection` — shared by presence, the auth stores and any other store built on
 * Redis. With REDIS_CLUSTER=true every one of them is a Redis Cluster client. Loaded only when
 * REDIS_URL is set (see create-services.ts).
 */
import type { Config } from "../config.ts";
import { assemble, type Services } from "../services.ts";
import { createLogger } from "../log.ts";
import { RedisBroker } from "../broker/redis.ts";
import type { HistoryPolicy } from "../broker/broker.ts";
import { closeConnection, connectWithin, createClient, errorReporter, takesCommands, type LogFn, type RedisClient } from "./connection.ts";
import { RedisPresence } from "../presence/redis.ts";
import { checkEvictionPolicy, redisStores } from "../stores/redis.ts";
import { RevocationReader } from "../stores/revocation-reads.ts";
import { RedisDeploymentRegistry } from "../deployment/redis.ts";
import { LEASE_MS } from "../deployment/heartbeat.ts";
import { RedisOutbox } from "../webhooks/redis-outbox.ts";

export async function createRedisServices(config: Config, historyFor?: (topic: string) => HistoryPolicy): Promise<Services> {
  const url = config.redisUrl;
  if (url === undefined) throw new Error("createRedisServices needs REDIS_URL");
  const logger = createLogger(config.logLevel, { instance: config.instanceId, region: config.region, component: "redis" });
  const log: LogFn = (level, message) => logger[level](message);

  const broker = new RedisBroker({
    url,
    cluster: config.redisCluster,
    instanceId: config.instanceId,
    historySize: config.historySize,
    historyTtlS: config.historyTtlS,
    commandTimeoutMs: config.redisCommandTimeoutMs,
    fenceMs: config.revocationFenceMs,
    historyFor,
    log,
  });
  const data = createDataConnection(config, log);
  // Connects while the broker starts (it waits for its own connections): one bounded wait at
  // start-up, not two in a row, so /healthz answers within ~3 s even with Redis down.
  void connectWithin(data, 3000).then((ready) => {
    if (!ready) log("warn", `Redis at ${redactUrl(url)} is not reachable yet: starting unready, retrying in the background`);
    else void checkEvictionPolicy(data, log);
  });
  // Every handshake reads two revocations; on their own connection the reads of one turn of the
  // event loop leave as one command (stores/revocation-reads.ts). On one Redis that command is the
  // turn's only one, so auto-pipelining would only add a Pipeline and a nextTick hop per call; on
  // a cluster each read is its own command, auto-pipelined per node.
  const reads = createDataConnection(config, log, "auth-reads", config.redisCluster);
  void connectWithin(reads, 3000);
  const presence = new RedisPresence({ redis: data, instanceId: config.instanceId, leaseMs: config.presenceLeaseMs, log });
  const stores = redisStores(data, new RevocationReader(reads, config.redisCommandTimeoutMs), config.userRevocationsLegacy);
  const outbox = config.webhookUrl === undefined ? null : new RedisOutbox({ redis: data, instanceId: config.instanceId, leaseMs: config.webhookLeaseMs, log });

  // Ready (/readyz) only when both are: a process whose reads connection is still opening (or
  // reconnecting after an outage) would refuse every cookie upgrade it is sent with 503.
  const dataUp = takesCommands(data);
  const readsUp = takesCommands(reads);
  return assemble(broker, presence, stores, new RedisDeploymentRegistry(data, LEASE_MS), {
    release: async () => {
      await Promise.all([closeConnection(data), closeConnection(reads)]);
    },
    outbox,
    connected: () => dataUp() && readsUp(),
  });
}

/**
 * The data connection: one Redis or a Redis Cluster client (REDIS_CLUSTER), lazily connecting,
 * failing fast after REDIS_COMMAND_TIMEOUT_MS, logging its first error per outage only. On a
 * cluster, keys used together in one command, MULTI or script must share a hash tag (`{…}`).
 */
export function createDataConnection(config: Config, log: LogFn, role = "data", autoPipelining = false): RedisClient {
  if (config.redisUrl === undefined) throw new Error("createDataConnection needs REDIS_URL");
  const errors = errorReporter(log, `redis ${role} connection`);
  const data = createClient(config.redisUrl, config.redisCluster, {
    name: `switchboard:${config.instanceId}:${role}`,
    commandTimeoutMs: config.redisCommandTimeoutMs,
    autoPipelining,
    onError: (error) => errors.report(error),
  });
  data.on("ready", () => errors.reset());
  return data;
}

/** The URL without its password, for logs. */
function redactUrl(urls: string): string {
  return urls.split(",").map((url) => redactOne(url.trim())).join(",");
}

function redactOne(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(invalid url)";
  }
}
