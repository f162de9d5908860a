/**
 * The one raw WebSocket peer of the tests: RFC 6455 over a plain TCP socket, for what a
 * well-behaved WebSocket client cannot do or cannot show:
 * - the HTTP status, headers and body of a refused upgrade (a WebSocket client only sees 1006):
 *   `upgradeStatus`, or `peer.head` / `peer.body`;
 * - frames a client must not send: unmasked frames, reserved bits, unknown opcodes, fragmented or
 *   oversized control frames, invalid UTF-8, arbitrary bytes after the 101 (`send`, `sendFrame`);
 * - a stalled consumer: `pause()` stops reading from the kernel, so the server's writes pile up.
 *
 *   const peer = await RawPeer.open(server.wsUrl, { Cookie: cookie });
 *   await peer.waitJson((f) => f.type === "welcome");
 *   peer.sendJson({ type: "subscribe", topic: "room:a", ref: 1 });
 *   peer.send(encodeFrame({ opcode: Op.text, payload: "hi", rsv: 0b100 }));
 *   const { code } = await peer.closed();   // the server's close code (null: cut without one)
 *
 * Every server frame is recorded with its opcode, so pongs and close frames can be asserted.
 */
import type { Socket } from "bun";
import type { Frame } from "./client.ts";

export const Op = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

export interface FrameSpec {
  opcode: number;
  payload?: string | Uint8Array;
  /** FIN bit; true unless a fragment is wanted. */
  fin?: boolean;
  /** RSV1..3 as a 3-bit number (0b100 = RSV1). */
  rsv?: number;
  /** Clients must mask (RFC 6455 §5.1); false sends an unmasked frame. */
  mask?: boolean;
}

/** Encodes one frame exactly as specified, even when the spec breaks the RFC. */
export function encodeFrame(spec: FrameSpec): Buffer {
  const payload = typeof spec.payload === "string" ? Buffer.from(spec.payload, "utf8") : Buffer.from(spec.payload ?? new Uint8Array());
  const fin = spec.fin ?? true;
  const mask = spec.mask ?? true;
  const len = payload.length;
  const lenBytes = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lenBytes + (mask ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | (((spec.rsv ?? 0) & 0b111) << 4) | (spec.opcode & 0x0f);
  head[1] = (mask ? 0x80 : 0) | (len < 126 ? len : len < 65536 ? 126 : 127);
  if (lenBytes === 2) head.writeUInt16BE(len, 2);
  if (lenBytes === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (!mask) return Buffer.concat([head, payload]);
  const key = crypto.getRandomValues(new Uint8Array(4));
  head.set(key, 2 + lenBytes);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([head, body]);
}

/** A close frame's payload: 2-byte code, then the reason. */
export function closePayload(code: number, reason = ""): Buffer {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}

export interface ServerFrame {
  opcode: number;
  fin: boolean;
  payload: Buffer;
  /** `Date.now()` when the frame was parsed. */
  at: number;
}

export interface HttpHead {
  status: number;
  headers: Record<string, string>;
}

export interface ClosedInfo {
  /** The server's close code, or null when the TCP connection ended without a close frame. */
  code: number | null;
  reason: string;
  /** ms from `open` to the end of the TCP connection. */
  at: number;
}

export interface UpgradeResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Performs a raw WebSocket upgrade request and returns the HTTP status, headers and body of the
 * answer (the body read up to its Content-Length, bounded). A 101 is closed again at once. Use it
 * for refused upgrades (403/401/429/503).
 */
export async function upgradeStatus(url: string, headers: Record<string, string> = {}, timeoutMs = 3000): Promise<UpgradeResponse> {
  const peer = await RawPeer.open(url, headers, timeoutMs);
  try {
    if (peer.upgraded) return { status: 101, headers: peer.head.headers, body: "" };
    const len = Number(peer.head.headers["content-length"] ?? 0);
    await peer.until(() => peer.body.length >= len || peer.ended, 1000, "the response body").catch(() => {});
    return { ...peer.head, body: peer.body.subarray(0, len || peer.body.length).toString("utf8") };
  } finally {
    peer.destroy();
  }
}

/** A raw WebSocket peer: does the HTTP upgrade, then sends whatever bytes it is told to. */
export class RawPeer {
  head: HttpHead = { status: 0, headers: {} };
  readonly frames: ServerFrame[] = [];
  /**
   * Frames kept in `frames` (close frames are always kept). A flood test lowers it so the client
   * does not spend its time storing hundreds of thousands of replies; `received` still counts them.
   */
  keep = Infinity;
  /** Frames received per opcode, kept or not. */
  readonly received = new Map<number, number>();
  ended = false;
  endedAt = 0;
  private buf: Buffer = Buffer.alloc(0);
  /** Not yet written, oldest first (the caller must not reuse a buffer it passed to `send`). */
  private pending: Uint8Array[] = [];
  private unsentBytes = 0;
  private headDone = false;
  private readonly parsed: Frame[] = [];
  private parsedUpTo = 0;
  private readonly startedAt = Date.now();
  private readonly listeners = new Set<() => void>();
  private socket!: Socket<undefined>;

  /** Connects and sends the upgrade; resolves once the HTTP response head arrived. */
  static async open(url: string, headers: Record<string, string> = {}, timeoutMs = 3000): Promise<RawPeer> {
    const peer = new RawPeer();
    const u = new URL(url);
    peer.socket = await Bun.connect({
      hostname: u.hostname,
      port: Number(u.port),
      socket: {
        data: (_s, chunk) => peer.onData(chunk),
        drain: () => peer.flush(),
        close: () => peer.onEnd(),
        end: () => peer.onEnd(),
        error: () => peer.onEnd(),
      },
    });
    const all: Record<string, string> = {
      Host: u.host,
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Key": Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64"),
      "Sec-WebSocket-Version": "13",
      ...headers,
    };
    let text = `GET ${u.pathname}${u.search} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(all)) text += `${k}: ${v}\r\n`;
    peer.send(Buffer.from(text + "\r\n", "latin1"));
    await peer.until(() => peer.headDone || peer.ended, timeoutMs, "the upgrade response");
    if (!peer.headDone) throw new Error("connection ended before the upgrade response");
    return peer;
  }

  get upgraded(): boolean {
    return this.head.status === 101;
  }

  /** What followed the head of a refused (non-101) upgrade: the HTTP body so far. */
  get body(): Buffer {
    return this.upgraded ? Buffer.alloc(0) : this.buf;
  }

  /**
   * Writes raw bytes (one or more encoded frames, or garbage), in order. Bun's socket.write may
   * take only part of a large write: the rest waits here for `drain`.
   */
  send(bytes: Uint8Array): void {
    if (this.ended) return;
    this.pending.push(bytes);
    this.unsentBytes += bytes.length;
    if (this.pending.length === 1) this.flush();
  }

  /** Bytes accepted by `send` but not yet handed to the kernel. */
  get unsent(): number {
    return this.unsentBytes;
  }

  private flush(): void {
    while (this.pending.length > 0 && !this.ended) {
      const head = this.pending[0]!;
      const n = Math.max(0, this.socket.write(head));
      this.unsentBytes -= n;
      if (n < head.length) {
        this.pending[0] = head.subarray(n);
        return;
      }
      this.pending.shift();
    }
  }

  sendFrame(spec: FrameSpec): void {
    this.send(encodeFrame(spec));
  }

  sendText(text: string): void {
    this.sendFrame({ opcode: Op.text, payload: text });
  }

  /** Text frames received, parsed as JSON (each parsed once). */
  json(): Frame[] {
    for (; this.parsedUpTo < this.frames.length; this.parsedUpTo++) {
      const f = this.frames[this.parsedUpTo]!;
      if (f.opcode === Op.text) this.parsed.push(JSON.parse(f.payload.toString("utf8")) as Frame);
    }
    return this.parsed;
  }

  /** Sends `frame` as JSON in one masked text frame. */
  sendJson(frame: unknown): void {
    this.sendText(JSON.stringify(frame));
  }

  /** Resolves with the first JSON text frame that matches `pred`. */
  waitJson(pred: (f: Frame) => boolean, timeoutMs = 3000, what = "a frame"): Promise<Frame> {
    return this.until(() => this.json().find(pred), timeoutMs, what);
  }

  /** Stops reading from the kernel: the server's writes pile up in TCP buffers, then in its own. */
  pause(): void {
    this.socket.pause();
  }

  /** Reads again after `pause`. */
  resume(): void {
    this.socket.resume();
  }

  /** The server's close frame, if one arrived (`at`: `Date.now()` at its arrival). */
  get closeFrame(): { code: number; reason: string; at: number } | null {
    const f = this.frames.find((x) => x.opcode === Op.close);
    if (f === undefined) return null;
    return { code: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005, reason: f.payload.subarray(2).toString("utf8"), at: f.at };
  }

  /** Resolves once the server sent a close frame or the connection ended. */
  async closed(timeoutMs = 3000): Promise<ClosedInfo> {
    await this.until(() => this.closeFrame !== null || this.ended, timeoutMs, "the close");
    const cf = this.closeFrame;
    return { code: cf?.code ?? null, reason: cf?.reason ?? "", at: (this.ended ? this.endedAt : Date.now()) - this.startedAt };
  }

  waitFrame(pred: (f: ServerFrame) => boolean, timeoutMs = 3000, what = "a frame"): Promise<ServerFrame> {
    return this.until(() => this.frames.find(pred), timeoutMs, what);
  }

  until<T>(cond: () => T | false | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = cond();
        if (v === undefined || v === false) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(v);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`raw peer: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  destroy(): void {
    try {
      this.socket.terminate();
    } catch {}
    this.onEnd();
  }

  private wake(): void {
    for (const l of [...this.listeners]) l();
  }

  private onEnd(): void {
    if (!this.ended) {
      this.ended = true;
      this.endedAt = Date.now();
    }
    this.wake();
  }

  private onData(chunk: Uint8Array): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (!this.headDone) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const lines = this.buf.subarray(0, end).toString("latin1").split("\r\n");
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(":");
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      this.head = { status: Number(lines[0]!.split(" ")[1]), headers };
      this.buf = this.buf.subarray(end + 4);
      this.headDone = true;
    }
    if (this.head.status === 101) this.parse();
    this.wake();
  }

  private parse(): void {
    for (let frame = takeFrame(this.buf); frame !== null; frame = takeFrame(this.buf)) {
      this.buf = frame.rest;
      const { opcode } = frame;
      this.received.set(opcode, (this.received.get(opcode) ?? 0) + 1);
      if (this.frames.length < this.keep || opcode === Op.close) {
        this.frames.push({ opcode, fin: frame.fin, payload: Buffer.from(frame.payload), at: Date.now() });
      }
    }
  }
}

/**
 * The first complete server frame at the start of `buf` (servers do not mask), or null while it
 * is incomplete. `payload` and `rest` are views into `buf`.
 */
export function takeFrame(buf: Buffer): { opcode: number; fin: boolean; payload: Buffer; rest: Buffer } | null {
  if (buf.length < 2) return null;
  let len = buf[1]! & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  if (buf.length < off + len) return null;
  return { opcode: buf[0]! & 0x0f, fin: (buf[0]! & 0x80) !== 0, payload: buf.subarray(off, off + len), rest: buf.subarray(off + len) };
}
