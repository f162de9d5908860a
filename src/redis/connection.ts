/**
 * ioredis clients configured for a real-time bus: fail fast instead of queueing, never resend a
 * command after a reconnect (a resent publish could be published twice, or after the caller was
 * told `unavailable`), reconnect quickly, and always have an `error` handler (an unhandled
 * `'error'` event would crash the process).
 */
import "./tracing-channel.ts";
import "./command-deadline.ts";
import Redis, { Cluster, type ClusterOptions, type RedisOptions } from "ioredis";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";

export { within } from "./command-deadline.ts";

/** How the Redis parts report what the operator should see; never carries credentials. */
export type LogFn = (level: "info" | "warn" | "error", message: string) => void;

export interface ConnectionOptions {
  /** Shown in CLIENT LIST, e.g. "switchboard:broker:<instance>". */
  name: string;
  /** A command without a reply after this long fails (ioredis' default waits ~100 s). */
  commandTimeoutMs?: number;
  /** Called once per error event; ioredis emits one per failed reconnect attempt. */
  onError?: (error: Error) => void;
  /** Send the commands issued in one event-loop tick in one write (the broker's hot path). */
  autoPipelining?: boolean;
}

/**
 * Reports a connection's errors without flooding the log: ioredis emits one per failed attempt,
 * and a cluster whose primary died emits thousands in the seconds before its replica takes over.
 * One line per `intervalMs` (with how many were left out), and again at once after `reset()`
 * (the connection was ready in between).
 */
export function errorReporter(log: LogFn, what: string, intervalMs = 30_000): { report(error: Error): void; reset(): void } {
  let last = -Infinity;
  let suppressed = 0;
  return {
    report(error) {
      const now = Date.now();
      if (now - last < intervalMs) {
        suppressed++;
        return;
      }
      log("warn", `${what}: ${error.message}${suppressed > 0 ? ` (${suppressed} similar errors before)` : ""}`);
      last = now;
      suppressed = 0;
    },
    reset() {
      last = -Infinity;
    },
  };
}

/** Reconnect delays: 50 ms, 100 ms, ... capped at 1 s, so a restarted Redis is back within ~1 s. */
export function retryDelay(times: number): number {
  return Math.min(50 * times, 1000);
}

/**
 * "The data connection" in either mode: one Redis, or a Redis Cluster (REDIS_CLUSTER=true).
 * Both speak the same commands; on a cluster, the keys of one command, MULTI or script must
 * share a hash slot (put the part that ties them together in `{braces}`).
 */
export type RedisClient = Redis | Cluster;

/** What the bus options look like on one node; the cluster applies them to every node it opens. */
function nodeOptions(options: ConnectionOptions): RedisOptions {
  return {
    lazyConnect: true,
    connectionName: options.name.replace(/[^A-Za-z0-9_.:-]/g, "_"),
    commandTimeout: options.commandTimeoutMs ?? 500,
    connectTimeout: 2000,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    maxRetriesPerRequest: 0,
    retryStrategy: retryDelay,
    disableClientInfo: true,
    enableAutoPipelining: options.autoPipelining ?? false,
  };
}

/** A lazily connecting client; call `connect()` (errors are handled, retries continue). */
export function createConnection(url: string, options: ConnectionOptions): Redis {
  const client = new Redis(url, nodeOptions(options));
  client.on("error", (error: Error) => options.onError?.(error));
  return client;
}

/** `redis://a:6379,redis://b:6379` → seed nodes; credentials and TLS come from the first URL. */
export function parseSeeds(urls: string): { seeds: { host: string; port: number }[]; username?: string; password?: string; tls: boolean } {
  const parsed = urls.split(",").map((u) => new URL(u.trim()));
  const first = parsed[0]!;
  return {
    seeds: parsed.map((u) => ({ host: u.hostname, port: Number(u.port || 6379) })),
    ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
    ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
    tls: first.protocol === "rediss:",
  };
}

export interface ClusterConnectionOptions extends ConnectionOptions {
  /** How often the slot map is re-read even when nothing failed (ioredis' default is never). Default 2000. */
  slotsRefreshIntervalMs?: number;
}

/**
 * A Redis Cluster client with the same fail-fast rules as `createConnection`: a command whose
 * connection closed is failed, not resent to the next primary (a publish could land twice), and a
 * cluster that is down fails at once (`unavailable`) instead of queueing. Redirections (MOVED, ASK,
 * TRYAGAIN) are still followed: the command did not run where it was refused.
 */
export function createClusterConnection(urls: string, options: ClusterConnectionOptions): Cluster {
  const { seeds, username, password, tls } = parseSeeds(urls);
  const redisOptions = nodeOptions(options);
  const clusterOptions: ClusterOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    enableAutoPipelining: options.autoPipelining ?? false,
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    retryDelayOnTryAgain: 50,
    maxRedirections: 8,
    slotsRefreshTimeout: Math.max(1000, options.commandTimeoutMs ?? 500),
    slotsRefreshInterval: options.slotsRefreshIntervalMs ?? 2000,
    clusterRetryStrategy: retryDelay,
    redisOptions: {
      connectionName: redisOptions.connectionName,
      commandTimeout: redisOptions.commandTimeout,
      connectTimeout: redisOptions.connectTimeout,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      maxRetriesPerRequest: 0,
      disableClientInfo: true,
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
      ...(tls ? { tls: {} } : {}),
    },
  };
  const client = new Cluster(seeds, clusterOptions);
  // Node connections are lazy: connect each as soon as the cluster knows it, so a command does not
  // wait for its node to connect. ioredis gives every node connection an offline queue whatever
  // redisOptions say (its ConnectionPool sets enableOfflineQueue: true ahead of them), so a command
  // meeting a node still connecting waits there, failed by commandTimeout, and may still be sent
  // once the node is up: the "applied after `unavailable`" case docs/protocol.md allows.
  client.on("+node", (node: Redis) => {
    if (node.status === "wait" && !node.options.readOnly) node.connect().catch(() => {});
  });
  client.on("error", (error: Error) => options.onError?.(error));
  // One error per failed node connection: while a primary is dead these come in bursts.
  client.on("node error", (error: Error) => options.onError?.(error));
  return client;
}

/** Either kind of client, by the deployment's REDIS_CLUSTER setting. */
export function createClient(url: string, cluster: boolean, options: ClusterConnectionOptions): RedisClient {
  return cluster ? createClusterConnection(url, options) : createConnection(url, options);
}

/** Starts connecting; resolves when ready or after `waitMs`, whichever comes first. Never rejects. */
export async function connectWithin(client: RedisClient, waitMs: number): Promise<boolean> {
  if (!(client instanceof Cluster)) return connectOne(client, waitMs);
  // A cluster is ready once it has the slot map; its primaries' connections may still be opening,
  // and a command meeting one of those fails at once. Wait for them too, within the same budget.
  const deadline = Date.now() + waitMs;
  if (!(await connectOne(client, waitMs))) return false;
  const primaries = client.nodes("master");
  const results = await Promise.all(primaries.map((node) => connectOne(node, Math.max(0, deadline - Date.now()))));
  return results.every(Boolean);
}

/**
 * Whether a client takes commands now: one Redis while it is `ready`; a cluster while it is `ready`
 * and, until that was once the case, every primary's connection is too (at start-up a command
 * meeting a primary still connecting fails at once). After that a dead primary fails only its own
 * slots, and readiness does not follow each shard (docs/redis.md).
 */
export function takesCommands(client: RedisClient): () => boolean {
  if (!(client instanceof Cluster)) return () => client.status === "ready";
  let primariesWereUp = false;
  return () => {
    if (client.status !== "ready") return false;
    primariesWereUp ||= client.nodes("master").every((node) => node.status === "ready");
    return primariesWereUp;
  };
}

async function connectOne(client: RedisClient, waitMs: number): Promise<boolean> {
  if (client.status === "ready") return true;
  const ready = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      client.off("ready", onReady);
      resolve(false);
    }, waitMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once("ready", onReady);
  });
  if (client.status === "wait") client.connect().catch(() => {});
  return ready;
}

/** Closes a client for good: QUIT when it can, then drop the socket and any reconnect timer. */
export async function closeConnection(client: RedisClient): Promise<void> {
  if (client.status === "ready") {
    await Promise.race([client.quit().catch(() => {}), Bun.sleep(300)]);
  }
  client.disconnect();
}

const TRANSIENT_REPLY = /^(LOADING|READONLY|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS|MOVED|ASK)\b/;

/**
 * Maps a failed Redis call to the error a client sees: `unavailable` (retry later) when Redis
 * could not be reached or is not serving, `internal` when Redis answered with an error (a bug).
 */
export function toSwitchboardError(error: unknown, what: string): SwitchboardError {
  if (error instanceof SwitchboardError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  // The detail (host, port, Redis's own words) stays in the error's `cause`, for logs: clients
  // get a sentence without the deployment's internals.
  if (error instanceof Error && error.name === "ReplyError" && !TRANSIENT_REPLY.test(detail)) {
    return new SwitchboardError(ErrorCode.internal, `${what} failed`, undefined, { cause: error });
  }
  return new SwitchboardError(ErrorCode.unavailable, `${what}: the broker is unreachable; retry`, undefined, { cause: error });
}

/** How a command that was written but never answered fails: it may still run once Redis answers. */
const MAYBE_APPLIED = /^(Command timed out|Connection is closed\.)/;

/**
 * A failed publish as toSwitchboardError maps it, except that one which was written and got no
 * answer (no reply in time: Redis stalled; the connection closed under it) says that it may still
 * be applied: "unavailable" alone promises that nothing was published, and a caller retrying
 * without its key would publish twice (docs/protocol.md "Delivery guarantees").
 */
export function publishError(error: unknown): SwitchboardError {
  const mapped = toSwitchboardError(error, "publish");
  if (mapped.code !== ErrorCode.unavailable || !(error instanceof Error) || !MAYBE_APPLIED.test(error.message)) return mapped;
  return new SwitchboardError(ErrorCode.unavailable, "publish: the broker did not confirm it in time and may still apply it; retry with the same key", undefined, { cause: error });
}

export function unavailable(what: string): SwitchboardError {
  return new SwitchboardError(ErrorCode.unavailable, `${what}: the broker is unreachable; retry`);
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
/** Random bytes drawn 4 KB at a time: every publish passes a fresh epoch (used only if the topic needs one). */
let randomPool = new Uint8Array(0);
let randomAt = 0;

/** 16 random hex digits (64 bits from the CSPRNG). */
export function randomEpoch(): string {
  if (randomAt + 8 > randomPool.length) {
    randomPool = crypto.getRandomValues(new Uint8Array(4096));
    randomAt = 0;
  }
  let hex = "";
  for (let i = randomAt; i < randomAt + 8; i++) hex += HEX[randomPool[i]!];
  randomAt += 8;
  return hex;
}
