/**
 * A TCP proxy in front of one Redis that can keep out the connections of one role: each client
 * connection is held until its `CLIENT SETNAME` arrives (every connection of the server names
 * itself `switchboard:<instance>:<role>`), then piped to Redis, or closed when its name contains a
 * held word. For readiness tests: which connection a process has up decides what it can serve.
 *
 *   const gate = await startRedisGate(redis.port);
 *   gate.hold("auth-reads")      // open ones of that name are closed, new ones refused
 *   gate.release("auth-reads")   // new ones pass again
 *   gate.url                     // redis://127.0.0.1:<port>
 *
 * A connection that sends no SETNAME within NAME_WAIT_MS passes unnamed. Backpressure is
 * respected (bytes queued until `drain`).
 */
import type { Socket, TCPSocketListener } from "bun";
import { flush } from "./proxy.ts";

const NAME_WAIT_MS = 500;
/** The name argument of a CLIENT SETNAME in RESP: `$<len>\r\nSETNAME\r\n$<len>\r\n<name>\r\n`. */
const SETNAME = /SETNAME\r\n\$\d+\r\n([^\r]*)\r\n/i;

export interface RedisGate {
  readonly port: number;
  readonly url: string;
  /** Closes the open connections whose name contains `word` and refuses new ones, until `release`. */
  hold(word: string): void;
  release(word: string): void;
  /** Open connections by name ("" for unnamed ones). */
  names(): string[];
  close(): Promise<void>;
}

interface Pair {
  client: Socket<Side>;
  upstream: Socket<Side> | null;
  name: string | null;
  /** What the client sent before its name was known or its upstream open. */
  head: Uint8Array[];
  toUpstream: Uint8Array[];
  toClient: Uint8Array[];
  closed: boolean;
}

interface Side {
  pair: Pair;
}

/** Queues a copy of `chunk` (Bun may reuse its buffer) behind what waits, and writes what it can. */
function write(to: Socket<Side>, queue: Uint8Array[], chunk?: Uint8Array): void {
  if (chunk !== undefined) queue.push(new Uint8Array(chunk));
  flush(to, queue);
}

export async function startRedisGate(redisPort: number): Promise<RedisGate> {
  const held = new Set<string>();
  const pairs = new Set<Pair>();
  const isHeld = (name: string) => [...held].some((word) => name.includes(word));

  const shut = (pair: Pair) => {
    if (pair.closed) return;
    pair.closed = true;
    pairs.delete(pair);
    pair.client.end();
    pair.upstream?.end();
  };

  /** The name is known (or will never be): refuse, or connect and send what was held. */
  const decide = (pair: Pair, name: string) => {
    if (pair.name !== null || pair.closed) return;
    pair.name = name;
    if (isHeld(name)) return shut(pair);
    void Bun.connect<Side>({
      hostname: "127.0.0.1",
      port: redisPort,
      data: { pair },
      socket: {
        open(upstream) {
          if (pair.closed) return void upstream.end();
          pair.upstream = upstream;
          for (const chunk of pair.head.splice(0)) write(upstream, pair.toUpstream, chunk);
        },
        data(_upstream, chunk) {
          if (!pair.closed) write(pair.client, pair.toClient, chunk);
        },
        drain(upstream) {
          write(upstream, pair.toUpstream);
        },
        close: () => shut(pair),
        error: () => shut(pair),
      },
    }).catch(() => shut(pair));
  };

  const listener: TCPSocketListener<Side> = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        const pair: Pair = { client, upstream: null, name: null, head: [], toUpstream: [], toClient: [], closed: false };
        client.data = { pair };
        pairs.add(pair);
        setTimeout(() => decide(pair, ""), NAME_WAIT_MS);
      },
      data(client, chunk) {
        const { pair } = client.data;
        if (pair.upstream !== null) return write(pair.upstream, pair.toUpstream, chunk);
        pair.head.push(new Uint8Array(chunk));
        if (pair.name !== null) return;
        const text = Buffer.concat(pair.head).toString("latin1");
        const named = SETNAME.exec(text);
        if (named !== null) decide(pair, named[1]!);
      },
      drain(client) {
        write(client, client.data.pair.toClient);
      },
      close: (client) => shut(client.data.pair),
      error: (client) => shut(client.data.pair),
    },
  });

  return {
    port: listener.port,
    url: `redis://127.0.0.1:${listener.port}`,
    hold(word) {
      held.add(word);
      for (const pair of pairs) if (pair.name !== null && isHeld(pair.name)) shut(pair);
    },
    release(word) {
      held.delete(word);
    },
    names: () => [...pairs].map((p) => p.name ?? ""),
    async close() {
      listener.stop(true);
      for (const pair of pairs) shut(pair);
    },
  };
}
