/**
 * A TCP proxy on 127.0.0.1 that adds a fixed delay in each direction, to play a machine in another
 * region than its Redis (cross-region cost, simulated):
 *
 *   const far = await startLatencyProxy({ upstream: redis.port, delayMs: 80 });
 *   startServer({ REDIS_URL: far.url("redis") })   // every Redis round trip now costs ≥ 160 ms
 *   far.dropAll()                                   // the long link breaks (both ends see a close)
 *   await far.close()
 *
 * Bytes keep their order: each chunk is held `delayMs` from its arrival, then written, so a stream
 * behaves like a long, fat pipe (latency, not bandwidth). Backpressure is respected: a chunk the
 * kernel does not take at once is kept until `drain`.
 */
import type { Socket, TCPSocketListener } from "bun";

export interface LatencyProxyOptions {
  /** The port on 127.0.0.1 every connection is piped to. */
  upstream: number;
  /** Delay added in each direction, in ms (a round trip costs twice this). */
  delayMs: number;
}

export interface LatencyProxy {
  readonly port: number;
  /** `<scheme>://127.0.0.1:<port>` */
  url(scheme: string): string;
  /** Changes the delay for chunks that arrive from now on. */
  setDelay(ms: number): void;
  /** Open connections. */
  readonly connections: number;
  /** Closes every open connection now (both ends). Returns how many there were. */
  dropAll(): number;
  close(): Promise<void>;
}

interface Direction {
  /** Chunks waiting for their time, oldest first; `due` rises monotonically per direction. */
  queue: { due: number; bytes: Uint8Array }[];
  /** Bytes the kernel refused, written on `drain`. */
  unsent: Uint8Array | null;
  timer: ReturnType<typeof setTimeout> | null;
}

interface Pair {
  client: Socket<Side>;
  upstream: Socket<Side> | null;
  toUpstream: Direction;
  toClient: Direction;
  closed: boolean;
}

interface Side {
  pair: Pair;
  isClient: boolean;
}

const direction = (): Direction => ({ queue: [], unsent: null, timer: null });

export async function startLatencyProxy(options: LatencyProxyOptions): Promise<LatencyProxy> {
  let delayMs = options.delayMs;
  const pairs = new Set<Pair>();

  const target = (pair: Pair, dir: Direction): Socket<Side> | null => (dir === pair.toUpstream ? pair.upstream : pair.client);

  const shutdown = (pair: Pair) => {
    if (pair.closed) return;
    pair.closed = true;
    pairs.delete(pair);
    for (const dir of [pair.toUpstream, pair.toClient]) {
      if (dir.timer !== null) clearTimeout(dir.timer);
      dir.timer = null;
      dir.queue.length = 0;
    }
    pair.client.end();
    pair.upstream?.end();
  };

  /** Writes every due chunk in order; stops at backpressure (resumed by `drain`). */
  const pump = (pair: Pair, dir: Direction) => {
    if (pair.closed) return;
    const socket = target(pair, dir);
    if (socket === null) return; // upstream still connecting: `open` pumps
    if (dir.unsent !== null) {
      const n = socket.write(dir.unsent);
      if (n < dir.unsent.byteLength) {
        dir.unsent = dir.unsent.subarray(Math.max(0, n));
        return;
      }
      dir.unsent = null;
    }
    const now = performance.now();
    while (dir.queue.length > 0 && dir.queue[0]!.due <= now) {
      const { bytes } = dir.queue.shift()!;
      const n = socket.write(bytes);
      if (n < bytes.byteLength) {
        dir.unsent = bytes.subarray(Math.max(0, n));
        return;
      }
    }
    schedule(pair, dir);
  };

  const schedule = (pair: Pair, dir: Direction) => {
    if (dir.timer !== null || dir.queue.length === 0 || pair.closed) return;
    const wait = Math.max(0, dir.queue[0]!.due - performance.now());
    dir.timer = setTimeout(() => {
      dir.timer = null;
      pump(pair, dir);
    }, wait);
  };

  const enqueue = (pair: Pair, dir: Direction, data: Uint8Array) => {
    // Copy: Bun may reuse the buffer it handed to `data`.
    dir.queue.push({ due: performance.now() + delayMs, bytes: new Uint8Array(data) });
    schedule(pair, dir);
  };

  const listener: TCPSocketListener<Side> = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        const pair: Pair = { client, upstream: null, toUpstream: direction(), toClient: direction(), closed: false };
        client.data = { pair, isClient: true };
        pairs.add(pair);
        Bun.connect<Side>({
          hostname: "127.0.0.1",
          port: options.upstream,
          data: { pair, isClient: false },
          socket: {
            open(upstream) {
              if (pair.closed) {
                upstream.end();
                return;
              }
              pair.upstream = upstream;
              pump(pair, pair.toUpstream);
            },
            data(_upstream, chunk) {
              enqueue(pair, pair.toClient, chunk);
            },
            drain() {
              pump(pair, pair.toUpstream);
            },
            close() {
              shutdown(pair);
            },
            error() {
              shutdown(pair);
            },
            connectError() {
              shutdown(pair);
            },
          },
        }).catch(() => shutdown(pair));
      },
      data(client, chunk) {
        enqueue(client.data.pair, client.data.pair.toUpstream, chunk);
      },
      drain(client) {
        pump(client.data.pair, client.data.pair.toClient);
      },
      close(client) {
        shutdown(client.data.pair);
      },
      error(client) {
        shutdown(client.data.pair);
      },
    },
  });

  return {
    port: listener.port,
    url: (scheme) => `${scheme}://127.0.0.1:${listener.port}`,
    setDelay(ms) {
      delayMs = ms;
    },
    get connections() {
      return pairs.size;
    },
    dropAll() {
      const n = pairs.size;
      for (const pair of [...pairs]) shutdown(pair);
      return n;
    },
    async close() {
      for (const pair of [...pairs]) shutdown(pair);
      listener.stop(true);
    },
  };
}
