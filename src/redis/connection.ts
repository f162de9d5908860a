/**
 * ioredis clients configured for a real-time bus: fail fast instead of queueing, never resend a
 * command after a reconnect (a resent publish could be published twice, or after the caller was
 * told `unavailable`), reconnect quickly, and always have an `error` handler (an unhandled
 * `'error'` event would crash the process).
 */
import Redis, { type RedisOptions } from "ioredis";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";

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

/** Reconnect delays: 50 ms, 100 ms, ... capped at 1 s, so a restarted Redis is back within ~1 s. */
export function retryDelay(times: number): number {
  return Math.min(50 * times, 1000);
}

/** A lazily connecting client; call `connect()` (errors are handled, retries continue). */
export function createConnection(url: string, options: ConnectionOptions): Redis {
  const redisOptions: RedisOptions = {
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
  const client = new Redis(url, redisOptions);
  client.on("error", (error: Error) => options.onError?.(error));
  return client;
}

/** Starts connecting; resolves when ready or after `waitMs`, whichever comes first. Never rejects. */
export async function connectWithin(client: Redis, waitMs: number): Promise<boolean> {
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
export async function closeConnection(client: Redis): Promise<void> {
  if (client.status === "ready") {
    await Promise.race([client.quit().catch(() => {}), Bun.sleep(300)]);
  }
  client.disconnect();
}

const TRANSIENT_REPLY = /^(LOADING|READONLY|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/;

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

export function unavailable(what: string): SwitchboardError {
  return new SwitchboardError(ErrorCode.unavailable, `${what}: the broker is unreachable; retry`);
}

export function randomEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
