/**
 * A small round-robin TCP proxy on 127.0.0.1 for fault tests, standing in for Fly's proxy.
 * Every accepted connection is piped to the next upstream port in turn; an upstream that refuses
 * is skipped (a restarting process), and when all refuse the client connection is closed.
 *
 *   const proxy = await startProxy({ upstreams: [a.port, b.port] });
 *   proxy.url("/ws")        // ws://127.0.0.1:<proxy port>/ws
 *   proxy.blackhole()       // every open connection goes silent, no FIN, no RST (a dead link)
 *   proxy.blackhole("toClient")  // only replies are lost: requests still arrive (a lost ack)
 *   proxy.dropAll()         // every open connection is closed at once (both ends see 1006)
 *   proxy.setUpstreams([c.port])   // new connections go there; open ones keep theirs
 *   await proxy.close()     // stop listening, close everything
 *
 * Bytes are forwarded as they come, with TCP backpressure respected (queued until `drain`).
 */
import type { Socket, TCPSocketListener } from "bun";

export interface ProxyOptions {
  /** Upstream ports on 127.0.0.1, tried round-robin. May be empty at first (connections are refused). */
  upstreams: number[];
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
}

export interface TcpProxy {
  /** The port the proxy listens on. */
  readonly port: number;
  /** `ws://127.0.0.1:<port><path>` (or `http://` with `scheme`). */
  url(path?: string, scheme?: "ws" | "http"): string;
  /** Replaces the upstream list for new connections; open connections keep their upstream. */
  setUpstreams(ports: number[]): void;
  /** How many client connections are open (blackholed ones included). */
  readonly connections: number;
  /** Open connections per upstream port (blackholed ones included). */
  connectionsByUpstream(): Map<number, number>;
  /**
   * Every connection open now stops forwarding and stops propagating closes: bytes are read and
   * discarded, neither end gets a FIN or RST, so both believe the link is up (a laptop that slept,
   * a NAT that forgot the flow). `direction` limits the loss to one way: "toClient" loses what
   * the upstream sends (the server gets a request, its reply vanishes), "toUpstream" the reverse.
   * Connections opened later are forwarded normally. Returns how many connections were black-holed.
   */
  blackhole(direction?: BlackholeDirection): number;
  /** Closes every open connection now (both ends). Returns how many there were. */
  dropAll(): number;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

export type BlackholeDirection = "both" | "toClient" | "toUpstream";

interface Pair {
  client: Socket<Side>;
  upstream: Socket<Side> | null;
  upstreamPort: number;
  toUpstream: Uint8Array[];
  toClient: Uint8Array[];
  /** Closes no longer propagate (set by any blackhole). */
  blackholed: boolean;
  dropToClient: boolean;
  dropToUpstream: boolean;
  clientClosed: boolean;
  upstreamClosed: boolean;
}

interface Side {
  pair: Pair;
  role: "client" | "upstream";
}

/** Writes `chunk` after whatever is queued; keeps the unwritten rest in `queue` until drain. */
function forward(to: Socket<Side> | null, queue: Uint8Array[], chunk: Uint8Array): void {
  if (!to || queue.length > 0) {
    queue.push(new Uint8Array(chunk));
    return;
  }
  const n = to.write(chunk);
  if (n < chunk.length) queue.push(new Uint8Array(chunk.subarray(Math.max(0, n))));
}

/** Writes what `queue` holds, oldest first; keeps the rest (backpressure) until the next `drain`. */
export function flush<T>(to: Socket<T>, queue: Uint8Array[]): void {
  while (queue.length > 0) {
    const head = queue[0]!;
    const n = to.write(head);
    if (n < head.length) {
      queue[0] = head.subarray(Math.max(0, n));
      return;
    }
    queue.shift();
  }
}

function end(socket: Socket<Side> | null): void {
  try {
    socket?.end();
  } catch {}
}

export async function startProxy(options: ProxyOptions): Promise<TcpProxy> {
  let upstreams = [...options.upstreams];
  let next = 0;
  const pairs = new Set<Pair>();

  const closePair = (pair: Pair) => {
    pairs.delete(pair);
    end(pair.client);
    end(pair.upstream);
  };

  const upstreamHandlers = {
    data(s: Socket<Side>, chunk: Uint8Array) {
      const { pair } = s.data;
      if (!pair.dropToClient && !pair.clientClosed) forward(pair.client, pair.toClient, chunk);
    },
    drain(s: Socket<Side>) {
      const { pair } = s.data;
      if (!pair.dropToUpstream) flush(s, pair.toUpstream);
      if (pair.clientClosed && pair.toUpstream.length === 0) closePair(pair);
    },
    close(s: Socket<Side>) {
      const { pair } = s.data;
      pair.upstreamClosed = true;
      if (pair.blackholed) {
        if (pair.clientClosed) pairs.delete(pair);
        return;
      }
      if (pair.toClient.length === 0) closePair(pair);
    },
    error() {},
  };

  /** Connects to the next upstream that accepts, trying each at most once. */
  async function connectUpstream(pair: Pair): Promise<boolean> {
    const list = upstreams;
    for (let tried = 0; tried < list.length; tried++) {
      const port = list[next++ % list.length]!;
      try {
        const socket = await Bun.connect<Side>({ hostname: "127.0.0.1", port, data: { pair, role: "upstream" }, socket: upstreamHandlers });
        pair.upstream = socket;
        pair.upstreamPort = port;
        return true;
      } catch {
        // refused: a process restarting; try the next one
      }
    }
    return false;
  }

  const listener: TCPSocketListener<Side> = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    socket: {
      open(client) {
        const pair: Pair = {
          client,
          upstream: null,
          upstreamPort: 0,
          toUpstream: [],
          toClient: [],
          blackholed: false,
          dropToClient: false,
          dropToUpstream: false,
          clientClosed: false,
          upstreamClosed: false,
        };
        client.data = { pair, role: "client" };
        pairs.add(pair);
        void connectUpstream(pair).then((ok) => {
          if (!ok || pair.clientClosed || !pairs.has(pair)) return closePair(pair);
          if (!pair.dropToUpstream) flush(pair.upstream!, pair.toUpstream);
        });
      },
      data(client, chunk) {
        const { pair } = client.data;
        if (!pair.dropToUpstream) forward(pair.upstream, pair.toUpstream, chunk);
      },
      drain(client) {
        const { pair } = client.data;
        if (!pair.dropToClient) flush(client, pair.toClient);
        if (pair.upstreamClosed && pair.toClient.length === 0 && !pair.blackholed) closePair(pair);
      },
      close(client) {
        const { pair } = client.data;
        pair.clientClosed = true;
        if (pair.blackholed) {
          if (pair.upstreamClosed || pair.upstream === null) pairs.delete(pair);
          return;
        }
        if (pair.toUpstream.length === 0 || pair.upstream === null) closePair(pair);
      },
      error() {},
    },
  });

  return {
    port: listener.port,
    url: (path = "/", scheme = "ws") => `${scheme}://127.0.0.1:${listener.port}${path}`,
    setUpstreams(ports) {
      upstreams = [...ports];
    },
    get connections() {
      let n = 0;
      for (const p of pairs) if (!p.clientClosed) n++;
      return n;
    },
    connectionsByUpstream() {
      const out = new Map<number, number>();
      for (const p of pairs) if (!p.clientClosed && p.upstream) out.set(p.upstreamPort, (out.get(p.upstreamPort) ?? 0) + 1);
      return out;
    },
    blackhole(direction = "both") {
      let n = 0;
      for (const p of pairs) {
        if (p.clientClosed) continue;
        p.blackholed = true;
        if (direction !== "toUpstream") {
          p.dropToClient = true;
          p.toClient.length = 0;
        }
        if (direction !== "toClient") {
          p.dropToUpstream = true;
          p.toUpstream.length = 0;
        }
        n++;
      }
      return n;
    },
    dropAll() {
      const all = [...pairs];
      for (const p of all) closePair(p);
      return all.length;
    },
    async close() {
      listener.stop(true);
      for (const p of [...pairs]) {
        pairs.delete(p);
        try {
          p.client.terminate();
        } catch {}
        try {
          p.upstream?.terminate();
        } catch {}
      }
    },
  };
}
