/**
 * A scripted Switchboard for SDK tests: a real `Bun.serve` WebSocket server on a free port that
 * speaks the protocol's frames the way a test tells it to. It exists for what the real server
 * cannot be made to do on demand (frames of SPEC §4–6 before their server side exists, a server
 * that accepts and closes at once, a gap); everything the real server does is tested against it.
 *
 * By default it answers like the real one: `welcome` at open (or after the `auth` frame with
 * `firstMessageAuth`), `ack` for subscribe / unsubscribe / publish with per-topic positions,
 * `pong`, an empty `presence`. A test overrides any of it with `onOpen` / `onFrame`.
 */
import type { Server, ServerWebSocket } from "bun";

export type Frame = Record<string, any>;

export interface Peer {
  /** Index in order of arrival (0 = the first socket). */
  readonly index: number;
  /** Every frame this socket sent, parsed. */
  readonly frames: Frame[];
  /** Topics this socket is subscribed to. */
  readonly topics: Set<string>;
  /** The `auth` frame's token, when one came. */
  token: string | undefined;
  /** Resolves with the close code and reason once the socket is gone. */
  readonly closed: Promise<{ code: number; reason: string }>;
  send(frame: Frame): void;
  close(code: number, reason?: string): void;
  welcome(user?: string): void;
  /** Resolves with the first frame (already received or coming) that matches. */
  waitFrame(pred: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
}

export interface Script {
  /** Wait for `{type:"auth"}` before `welcome` (a token client). Default false: welcome at open. */
  firstMessageAuth?: boolean;
  /** Replaces the default at open (welcome or waiting for auth). */
  onOpen?(peer: Peer): void;
  /** Sees each client frame first; return true when it handled the frame (no default reply). */
  onFrame?(peer: Peer, frame: Frame): boolean | void;
}

export interface ScriptedServer {
  url: string;
  peers: Peer[];
  /** performance.now() of each socket's open. */
  opens: number[];
  /** The URL of each upgrade request (path and query), in order. */
  urls: string[];
  /** Per topic: its epoch and last seq. */
  positions: Map<string, { seq: number; epoch: string }>;
  /** Publishes on `topic` (next seq) to every subscribed peer; returns the frame. */
  publish(topic: string, data: unknown): Frame;
  waitPeers(count: number, timeoutMs?: number): Promise<Peer>;
  stop(): Promise<void>;
}

interface Data {
  peer: PeerImpl;
}

class PeerImpl implements Peer {
  readonly frames: Frame[] = [];
  readonly topics = new Set<string>();
  token: string | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;
  resolveClosed!: (c: { code: number; reason: string }) => void;
  readonly waiters = new Set<() => void>();

  constructor(
    readonly index: number,
    readonly ws: ServerWebSocket<Data>,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  send(frame: Frame): void {
    this.ws.send(JSON.stringify(frame));
  }

  close(code: number, reason = ""): void {
    this.ws.close(code, reason);
  }

  welcome(user = "alice"): void {
    this.send({ type: "welcome", user: { id: user, name: user }, connectionId: `c${this.index}`, instance: "scripted", region: "test" });
  }

  waitFrame(pred: (f: Frame) => boolean, timeoutMs = 3000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.frames.find(pred);
        if (!found) return false;
        clearTimeout(timer);
        this.waiters.delete(check as () => void);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check as () => void);
        reject(new Error(`peer ${this.index}: no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`));
      }, timeoutMs);
      if (!check()) this.waiters.add(check as () => void);
    });
  }
}

export function scriptedServer(script: Script = {}): ScriptedServer {
  const peers: PeerImpl[] = [];
  const opens: number[] = [];
  const urls: string[] = [];
  const positions = new Map<string, { seq: number; epoch: string }>();
  const position = (topic: string) => {
    let p = positions.get(topic);
    if (!p) positions.set(topic, (p = { seq: 0, epoch: "e1" }));
    return p;
  };

  const reply = (peer: PeerImpl, f: Frame): void => {
    switch (f.type) {
      case "auth":
        peer.token = f.token;
        return peer.welcome();
      case "subscribe": {
        peer.topics.add(f.topic);
        const p = position(f.topic);
        return peer.send({ type: "ack", ref: f.ref, topic: f.topic, seq: p.seq, epoch: p.epoch, recovered: f.since !== undefined && f.since.epoch === p.epoch });
      }
      case "unsubscribe":
        peer.topics.delete(f.topic);
        return peer.send({ type: "ack", ref: f.ref, topic: f.topic });
      case "publish": {
        const m = server.publish(f.topic, f.data);
        return peer.send({ type: "ack", ref: f.ref, topic: f.topic, seq: m.seq, epoch: m.epoch });
      }
      case "presence":
        return peer.send({ type: "presence", ref: f.ref, topic: f.topic, members: [] });
      case "ping":
        return peer.send({ type: "pong", ref: f.ref });
    }
  };

  const bun: Server<Data> = Bun.serve<Data>({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, srv) {
      const url = new URL(req.url);
      urls.push(url.pathname + url.search);
      if (srv.upgrade(req, { data: { peer: undefined as never } })) return undefined;
      return new Response("scripted switchboard", { status: 426 });
    },
    websocket: {
      open(ws) {
        const peer = new PeerImpl(peers.length, ws);
        ws.data.peer = peer;
        peers.push(peer);
        opens.push(performance.now());
        if (script.onOpen) script.onOpen(peer);
        else if (!script.firstMessageAuth) peer.welcome();
      },
      message(ws, data) {
        const peer = ws.data.peer;
        const f = JSON.parse(String(data)) as Frame;
        peer.frames.push(f);
        for (const w of [...peer.waiters]) w();
        if (script.onFrame?.(peer, f) === true) return;
        reply(peer, f);
      },
      close(ws, code, reason) {
        ws.data.peer.resolveClosed({ code, reason });
      },
    },
  });

  const server: ScriptedServer = {
    url: `ws://127.0.0.1:${bun.port}/ws`,
    peers,
    opens,
    urls,
    positions,
    publish(topic, data) {
      const p = position(topic);
      p.seq++;
      const frame = { type: "message", topic, seq: p.seq, epoch: p.epoch, from: "bob", data, ts: Date.now() };
      for (const peer of peers) if (peer.topics.has(topic) && peer.ws.readyState === 1) peer.send(frame);
      return frame;
    },
    async waitPeers(count, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (peers.length < count) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for socket #${count} (have ${peers.length})`);
        await Bun.sleep(5);
      }
      return peers[count - 1]!;
    },
    async stop() {
      await bun.stop(true);
    },
  };
  return server;
}
