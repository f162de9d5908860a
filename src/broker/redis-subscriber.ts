/**
 * The connection under one subscriber link (redis-link.ts): what it needs from a Redis client, on
 * ioredis or on a RespLink.
 *
 * - One Redis over `redis://`, plain pub/sub: a RespLink (redis/resp-link.ts), as the publishes.
 *   Every delivery of the process crosses this connection; ioredis decoded each message with ~5 µs
 *   more CPU than the link's in-place read (issue 17: bench/README.md, "Round nine").
 * - Sharded links (Cluster), TLS (`rediss://`) and Unix sockets: ioredis, as before.
 * Either way: nothing queued while down, nothing resent, a command without a reply after
 * `commandTimeoutMs` fails, reconnecting (with `retryDelay`) until `close()`; after every
 * reconnection the link subscribes again itself (auto-resubscribe is off).
 */
import type Redis from "ioredis";
import { createConnection, retryDelay } from "../redis/connection.ts";
import { RespLink } from "../redis/resp-link.ts";

export type LinkMode = "plain" | "sharded";

export interface SubscriberConnection {
  /** Connected and able to take commands. */
  readonly ready: boolean;
  /** (S)SUBSCRIBE or (S)UNSUBSCRIBE the channels; resolves once Redis confirmed every one. */
  command(kind: "subscribe" | "unsubscribe", channels: string[]): Promise<unknown>;
  /** Drops the connection and opens a new one. */
  reconnect(): void;
  /** Leaves no socket or timer behind. */
  close(): void;
}

export interface SubscriberConnectionEvents {
  /** Each time the connection is ready (nothing is subscribed on it yet). */
  onReady(): void;
  /** The connection closed. */
  onClose(): void;
  onMessage(channel: string, payload: string): void;
  /** A sharded link was told that a channel moved away. */
  onMoved(): void;
}

export interface SubscriberConnectionOptions {
  url: string;
  name: string;
  mode: LinkMode;
  commandTimeoutMs: number;
}

export function subscriberConnection(options: SubscriberConnectionOptions, events: SubscriberConnectionEvents): SubscriberConnection {
  const url = new URL(options.url);
  const lean = options.mode === "plain" && url.protocol === "redis:" && url.hostname !== "";
  return lean ? linkConnection(options, events) : ioredisConnection(options, events);
}

function linkConnection(options: SubscriberConnectionOptions, events: SubscriberConnectionEvents): SubscriberConnection {
  const link = new RespLink({
    url: options.url,
    name: options.name,
    commandTimeoutMs: options.commandTimeoutMs,
    onReady: () => events.onReady(),
    onDown: () => events.onClose(),
    onError: () => {},
    onMessage: (channel, payload) => events.onMessage(channel, payload),
  });
  link.connect();
  return {
    get ready() {
      return link.ready;
    },
    command: (kind, channels) => link.send([kind === "subscribe" ? "SUBSCRIBE" : "UNSUBSCRIBE", ...channels], channels.length),
    reconnect: () => link.reconnect(),
    close: () => link.close(),
  };
}

function ioredisConnection(options: SubscriberConnectionOptions, events: SubscriberConnectionEvents): SubscriberConnection {
  let closed = false;
  const conn: Redis = createConnection(options.url, { name: options.name, commandTimeoutMs: options.commandTimeoutMs, onError: () => {} });
  conn.options.retryStrategy = (times) => (closed ? null : retryDelay(times));
  conn.on("ready", () => events.onReady());
  conn.on("close", () => events.onClose());
  conn.on(options.mode === "sharded" ? "smessage" : "message", (channel: string, payload: string) => events.onMessage(channel, payload));
  conn.on("moved", () => events.onMoved());
  conn.connect().catch(() => {});
  const sharded = options.mode === "sharded";
  return {
    get ready() {
      return conn.status === "ready";
    },
    command: (kind, channels) => {
      if (kind === "subscribe") return sharded ? conn.ssubscribe(...channels) : conn.subscribe(...channels);
      return sharded ? conn.sunsubscribe(...channels) : conn.unsubscribe(...channels);
    },
    reconnect: () => conn.disconnect(true),
    close: () => {
      closed = true;
      conn.disconnect();
    },
  };
}
