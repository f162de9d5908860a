/**
 * A lean raw-socket WebSocket client for the load generator (RFC 6455, client side only).
 *
 * Cheap by construction, so that the generator is not what the benchmark measures:
 * - Bun.connect TCP; the HTTP upgrade is written by hand and only the status line is checked.
 * - Server → client frames are parsed incrementally from the bytes of each chunk, never copied
 *   except for a partial frame left at the end of a chunk.
 * - A benchmark publication is recognised without decoding it: its payload contains the marker
 *   `"zb":"<pubSeq>:<sentMicros>"` (see `encodeStamp`), found with one native `indexOf` per chunk
 *   and parsed digit by digit. Only other frames (welcome, ack, Engine.IO control) become strings.
 * - Client frames are masked with the all-zero key: the mask bit is set as RFC 6455 requires,
 *   and XOR with zero leaves the payload as is, so sending costs a header and one write.
 *
 * Bun.connect has no option for a local (source) address, so a run cannot spread its sockets
 * over several 127.0.0.x *source* addresses; it can spread them over destination addresses
 * instead (a server bound to 0.0.0.0 answers on every 127.0.0.x), which gives each destination
 * its own ephemeral-port range.
 */
import type { Socket } from "bun";

export const MARKER = Buffer.from('"zb":"');
const HANDSHAKE_END = Buffer.from("\r\n\r\n");

/** Microseconds on a clock shared by every process of this machine (wall clock, µs resolution). */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** The stamp a publisher puts in `data`: `{"zb":"<pubSeq>:<sentMicros>"}` plus optional padding. */
export function encodeStamp(pubSeq: number, sentUs: number, pad: string): string {
  return pad ? `{"zb":"${pubSeq}:${sentUs}","p":"${pad}"}` : `{"zb":"${pubSeq}:${sentUs}"}`;
}

export interface WsHandlers {
  /** The 101 arrived. */
  open(c: WsConn): void;
  /** A text frame that carries no benchmark stamp. */
  text(c: WsConn, text: string): void;
  /** A text frame carrying a stamp; `recvUs` is taken once per TCP chunk. */
  delivery(c: WsConn, pubSeq: number, sentUs: number, recvUs: number): void;
  /** The socket is gone. `code`: the close frame's code, the HTTP status of a refused upgrade, or 0. */
  close(c: WsConn, code: number, reason: string): void;
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

/** One client WebSocket. `tag` and `slot` are free for the caller (e.g. topic index, role). */
export class WsConn {
  socket: Socket<WsConn> | null = null;
  state = CONNECTING;
  private pending: Buffer | null = null;
  private out: Buffer[] = [];
  private closeCode = 0;
  private closeReason = "";
  tag = 0;
  slot = 0;
  phase = 0;
  startedUs = 0;

  constructor(
    readonly handlers: WsHandlers,
    readonly request: string,
  ) {}

  get isOpen(): boolean {
    return this.state === OPEN;
  }

  /** Sends one masked text frame (zero mask key). */
  send(text: string): void {
    this.write(frame(0x1, Buffer.from(text)));
  }

  /** Several text frames in one write: the cheap way to send a burst. */
  sendMany(texts: string[]): void {
    if (texts.length === 1) return this.send(texts[0]!);
    this.write(Buffer.concat(texts.map((t) => frame(0x1, Buffer.from(t)))));
  }

  /** Sends a close frame and half-closes the TCP connection. */
  close(code = 1000): void {
    if (this.state === CLOSED || !this.socket) return;
    const body = Buffer.alloc(2);
    body.writeUInt16BE(code);
    this.write(frame(0x8, body));
    this.socket.end();
  }

  /** Drops the TCP connection without a close frame. */
  terminate(): void {
    this.socket?.terminate();
  }

  write(buf: Buffer): void {
    const s = this.socket;
    if (!s || this.state === CLOSED) return;
    if (this.out.length > 0) {
      this.out.push(buf);
      return;
    }
    const n = s.write(buf);
    if (n < buf.length) this.out.push(buf.subarray(Math.max(n, 0)));
  }

  /** @internal */
  flush(): void {
    const s = this.socket;
    while (s && this.out.length > 0) {
      const buf = this.out[0]!;
      const n = s.write(buf);
      if (n < buf.length) {
        this.out[0] = buf.subarray(Math.max(n, 0));
        return;
      }
      this.out.shift();
    }
  }

  /** @internal Parses one TCP chunk. */
  data(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let pos = 0;
    if (this.state === CONNECTING) {
      const end = buf.indexOf(HANDSHAKE_END);
      if (end < 0) {
        this.pending = Buffer.from(buf);
        return;
      }
      const status = Number(buf.toString("latin1", 9, 12));
      if (status !== 101) {
        this.closeCode = status || 0;
        this.closeReason = `HTTP ${status}`;
        this.socket?.terminate();
        return;
      }
      this.state = OPEN;
      pos = end + 4;
      this.handlers.open(this);
    }
    const len = buf.length;
    let recvUs = -1;
    let mk = -2; // next marker position in buf; -2: not searched yet, -1: none left
    while (len - pos >= 2 && this.state === OPEN) {
      const b0 = buf[pos]!;
      let plen = buf[pos + 1]! & 127;
      let hdr = 2;
      if (plen === 126) {
        if (len - pos < 4) break;
        plen = (buf[pos + 2]! << 8) | buf[pos + 3]!;
        hdr = 4;
      } else if (plen === 127) {
        if (len - pos < 10) break;
        plen = buf.readUInt32BE(pos + 2) * 4294967296 + buf.readUInt32BE(pos + 6);
        hdr = 10;
      }
      const start = pos + hdr;
      const end = start + plen;
      if (end > len) break;
      const op = b0 & 15;
      if (op === 1 || op === 0) {
        if (mk === -2 || (mk >= 0 && mk < start)) mk = buf.indexOf(MARKER, start);
        if (mk >= 0 && mk < end) {
          let i = mk + MARKER.length;
          let seq = 0;
          let c = buf[i]!;
          while (c !== 58 /* : */ && i < end) {
            seq = seq * 10 + (c - 48);
            c = buf[++i]!;
          }
          let ts = 0;
          c = buf[++i]!;
          while (c !== 34 /* " */ && i < end) {
            ts = ts * 10 + (c - 48);
            c = buf[++i]!;
          }
          if (recvUs < 0) recvUs = nowUs();
          mk = -2;
          this.handlers.delivery(this, seq, ts, recvUs);
        } else {
          this.handlers.text(this, buf.toString("utf8", start, end));
        }
      } else if (op === 9) {
        this.write(frame(0xa, Buffer.from(buf.subarray(start, end))));
      } else if (op === 8) {
        this.closeCode = plen >= 2 ? buf.readUInt16BE(start) : 1005;
        this.closeReason = buf.toString("utf8", start + 2, end);
        this.socket?.end();
        this.state = CLOSED;
      }
      pos = end;
    }
    if (pos < len && this.state !== CLOSED) this.pending = Buffer.from(buf.subarray(pos));
  }

  /** @internal */
  closed(): void {
    if (this.state === CLOSED && this.socket === null) return;
    this.state = CLOSED;
    this.socket = null;
    this.handlers.close(this, this.closeCode, this.closeReason);
  }
}

/** A masked client frame with the zero key. */
function frame(op: number, payload: Buffer): Buffer {
  const n = payload.length;
  const hdr = n < 126 ? 6 : n < 65536 ? 8 : 14;
  const out = Buffer.allocUnsafe(hdr + n);
  out[0] = 0x80 | op;
  if (n < 126) {
    out[1] = 0x80 | n;
  } else if (n < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(Math.floor(n / 4294967296), 2);
    out.writeUInt32BE(n >>> 0, 6);
  }
  out.writeUInt32BE(0, hdr - 4);
  payload.copy(out, hdr);
  return out;
}

const socketHandlers = {
  open(s: Socket<WsConn>) {
    s.data.socket = s;
    s.write(s.data.request);
  },
  data(s: Socket<WsConn>, chunk: Buffer) {
    s.data.data(chunk);
  },
  drain(s: Socket<WsConn>) {
    s.data.flush();
  },
  close(s: Socket<WsConn>) {
    s.data.closed();
  },
  error(s: Socket<WsConn>) {
    s.data.closed();
  },
  connectError(s: Socket<WsConn>) {
    s.data.closed();
  },
};

export interface ConnectOptions {
  host: string;
  port: number;
  path: string;
  headers?: Record<string, string>;
}

/** Opens a WebSocket; failures arrive as `handlers.close` with code 0 (TCP) or the HTTP status. */
export function connect(opts: ConnectOptions, handlers: WsHandlers): WsConn {
  let req = `GET ${opts.path} HTTP/1.1\r\nHost: ${opts.host}:${opts.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n`;
  for (const [k, v] of Object.entries(opts.headers ?? {})) req += `${k}: ${v}\r\n`;
  req += "\r\n";
  const conn = new WsConn(handlers, req);
  conn.startedUs = nowUs();
  Bun.connect<WsConn>({ hostname: opts.host, port: opts.port, data: conn, socket: socketHandlers }).catch(() => conn.closed());
  return conn;
}
