/**
 * Test clients that see exactly what a real client sees.
 *
 * - `TestClient`: Bun's WebSocket with custom headers (Cookie, Origin); records every frame and
 *   the close code/reason. A refused upgrade shows up here only as close 1006, as in a browser.
 * - `upgradeStatus`: a raw HTTP upgrade over TCP, to read the status of a refused upgrade.
 * - `RawWebSocket`: a minimal WebSocket over a raw TCP socket that can stop reading (pause),
 *   to play a stalled consumer.
 */
import type { Socket } from "bun";

export type Frame = { type: string; ref?: number; topic?: string; [k: string]: any };

export interface CloseInfo {
  code: number;
  reason: string;
  /** ms since the client was created. */
  at: number;
}

interface Waiter {
  check(): boolean;
}

export interface ConnectOptions {
  cookie?: string;
  origin?: string;
  headers?: Record<string, string>;
}

const DEFAULT_TIMEOUT = 3000;

/** Bun's WebSocket takes `headers` (the DOM typing, also in scope, does not know it). */
const BunWebSocket = WebSocket as unknown as new (url: string, options: { headers: Record<string, string> }) => WebSocket;

export class TestClient {
  readonly ws: WebSocket;
  /** Every parsed server frame, in arrival order. */
  readonly frames: Frame[] = [];
  /** `Date.now()` at the arrival of each frame of `frames` (same index). */
  readonly arrivals: number[] = [];
  /** Raw text of frames that were not JSON (should never happen). */
  readonly nonJson: string[] = [];
  /** `message` frames per topic, in arrival order. */
  readonly messages = new Map<string, Frame[]>();
  opened = false;
  close: CloseInfo | null = null;
  readonly createdAt = Date.now();
  private consumed = new Set<number>();
  private waiters = new Set<Waiter>();
  private nextRef = 1_000_000;

  constructor(url: string, opts: ConnectOptions = {}) {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.cookie) headers.Cookie = opts.cookie;
    if (opts.origin) headers.Origin = opts.origin;
    this.ws = new BunWebSocket(url, { headers });
    this.ws.addEventListener("open", () => {
      this.opened = true;
      this.notify();
    });
    this.ws.addEventListener("message", (ev) => {
      const data = ev.data;
      if (typeof data !== "string") {
        this.nonJson.push(`<binary ${String(data)}>`);
        return;
      }
      let frame: Frame;
      try {
        frame = JSON.parse(data);
      } catch {
        this.nonJson.push(data);
        return;
      }
      this.frames.push(frame);
      this.arrivals.push(Date.now());
      if (frame.type === "message" && typeof frame.topic === "string") {
        let list = this.messages.get(frame.topic);
        if (!list) this.messages.set(frame.topic, (list = []));
        list.push(frame);
      }
      this.notify();
    });
    this.ws.addEventListener("close", (ev) => {
      this.close = { code: ev.code, reason: ev.reason, at: Date.now() - this.createdAt };
      this.notify();
    });
    this.ws.addEventListener("error", () => {});
  }

  /** Opens and waits for `welcome`; throws with the close code if the socket is refused or closed. */
  static async connect(url: string, opts: ConnectOptions = {}, timeoutMs = DEFAULT_TIMEOUT): Promise<TestClient> {
    const c = new TestClient(url, opts);
    await c.welcome(timeoutMs);
    return c;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  private notify() {
    for (const w of [...this.waiters]) if (w.check()) this.waiters.delete(w);
  }

  /**
   * Resolves when `cond()` returns a value other than undefined/false, re-checked on every frame
   * and on close. Rejects after `timeoutMs`, or when the socket closes first (unless `allowClose`).
   */
  until<T>(cond: () => T | undefined | false, timeoutMs = DEFAULT_TIMEOUT, what = "condition", allowClose = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waiter: Waiter = {
        check: () => {
          let v: T | undefined | false;
          try {
            v = cond();
          } catch (e) {
            clearTimeout(timer);
            reject(e);
            return true;
          }
          if (v !== undefined && v !== false) {
            clearTimeout(timer);
            resolve(v);
            return true;
          }
          if (this.close && !allowClose) {
            clearTimeout(timer);
            reject(new Error(`socket closed (${this.close.code} ${this.close.reason}) while waiting for ${what}; last frames: ${this.tail()}`));
            return true;
          }
          return false;
        },
      };
      if (waiter.check()) return;
      timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last frames: ${this.tail()}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  private tail(): string {
    return JSON.stringify(this.frames.slice(-5)).slice(0, 600);
  }

  /** The first frame matching `pred` not returned by an earlier `next`, waiting for it if needed. */
  next(pred: (f: Frame) => boolean = () => true, timeoutMs = DEFAULT_TIMEOUT, what = "a matching frame"): Promise<Frame> {
    return this.until(
      () => {
        for (let i = 0; i < this.frames.length; i++) {
          if (this.consumed.has(i)) continue;
          const f = this.frames[i]!;
          if (pred(f)) {
            this.consumed.add(i);
            return f;
          }
        }
        return undefined;
      },
      timeoutMs,
      what,
    );
  }

  /** The next frame of `type`. */
  nextType(type: string, timeoutMs = DEFAULT_TIMEOUT): Promise<Frame> {
    return this.next((f) => f.type === type, timeoutMs, `a ${type} frame`);
  }

  welcome(timeoutMs = DEFAULT_TIMEOUT): Promise<Frame> {
    return this.nextType("welcome", timeoutMs);
  }

  /** Waits until `n` messages of `topic` arrived in total; returns them all. */
  waitMessages(topic: string, n: number, timeoutMs = DEFAULT_TIMEOUT): Promise<Frame[]> {
    return this.until(
      () => {
        const list = this.messages.get(topic);
        return list && list.length >= n ? list : undefined;
      },
      timeoutMs,
      `${n} messages on ${topic} (have ${this.messages.get(topic)?.length ?? 0})`,
    );
  }

  /** Waits for the close; resolves with code and reason. */
  waitClose(timeoutMs = DEFAULT_TIMEOUT): Promise<CloseInfo> {
    return this.until(() => this.close ?? undefined, timeoutMs, "close", true);
  }

  /** Waits until the socket is open (or rejects if it closes first). */
  waitOpen(timeoutMs = DEFAULT_TIMEOUT): Promise<true> {
    return this.until(() => this.opened || undefined, timeoutMs, "open");
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  sendRaw(data: string | ArrayBufferLike | Uint8Array): void {
    this.ws.send(data as any);
  }

  /**
   * Sends a frame with a `ref` (a fresh one unless given) and resolves with the reply carrying the
   * same `ref` (`ack`, `error`, `pong` or `presence`).
   */
  request(frame: Record<string, unknown>, timeoutMs = DEFAULT_TIMEOUT): Promise<Frame> {
    const ref = typeof frame.ref === "number" ? frame.ref : this.nextRef++;
    this.send({ ...frame, ref });
    return this.next((f) => f.ref === ref && f.type !== "message", timeoutMs, `reply to ${frame.type} ref ${ref}`);
  }

  /** Subscribes and returns the ack; throws on an error reply. */
  async subscribe(topic: string, since?: { seq: number; epoch: string }): Promise<Frame> {
    const reply = await this.request(since ? { type: "subscribe", topic, since } : { type: "subscribe", topic });
    if (reply.type !== "ack") throw new Error(`subscribe ${topic} → ${JSON.stringify(reply)}`);
    return reply;
  }

  async publish(topic: string, data: unknown, key?: string): Promise<Frame> {
    const frame: Record<string, unknown> = { type: "publish", topic, data };
    if (key !== undefined) frame.key = key;
    const reply = await this.request(frame);
    if (reply.type !== "ack") throw new Error(`publish ${topic} → ${JSON.stringify(reply)}`);
    return reply;
  }

  /** Frames of `type` received so far (consumed or not). */
  ofType(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }

  /** Closes (if open) and waits for the close to complete. */
  async closeAndWait(code = 1000, timeoutMs = DEFAULT_TIMEOUT): Promise<void> {
    if (this.close) return;
    try {
      this.ws.close(code);
    } catch {}
    await this.waitClose(timeoutMs).catch(() => {});
  }

  terminate(): void {
    if (!this.close) {
      try {
        this.ws.close();
      } catch {}
    }
  }
}

/** Closes every client given; for afterEach/afterAll. */
export async function closeAll(clients: Iterable<TestClient>): Promise<void> {
  await Promise.all([...clients].map((c) => c.closeAndWait(1000, 1000)));
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP upgrade over TCP

export interface UpgradeResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function upgradeRequest(url: string, headers: Record<string, string>): { host: string; port: number; text: string } {
  const u = new URL(url);
  const port = Number(u.port || (u.protocol === "wss:" ? 443 : 80));
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  const all: Record<string, string> = {
    Host: u.host,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": key,
    "Sec-WebSocket-Version": "13",
    ...headers,
  };
  let text = `GET ${u.pathname}${u.search} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(all)) text += `${k}: ${v}\r\n`;
  text += "\r\n";
  return { host: u.hostname, port, text };
}

function parseHead(head: string): { status: number; headers: Record<string, string> } {
  const lines = head.split("\r\n");
  const status = Number(lines[0]!.split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status, headers };
}

/**
 * Performs a raw WebSocket upgrade request and returns the HTTP status, headers and body of the
 * answer. A 101 is closed again at once. Use it for refused upgrades (403/401/429/503).
 */
export async function upgradeStatus(url: string, headers: Record<string, string> = {}, timeoutMs = 3000): Promise<UpgradeResponse> {
  const raw = await RawWebSocket.connect(url, headers, timeoutMs);
  raw.destroy();
  return raw.response;
}

/**
 * A WebSocket client over a raw TCP socket: sends masked text frames, parses server frames, and can
 * stop reading from the kernel (`pause`) to play a stalled consumer.
 */
export class RawWebSocket {
  response: UpgradeResponse = { status: 0, headers: {}, body: "" };
  /** Text frames received after the 101, in order. */
  readonly texts: string[] = [];
  /** The close frame the server sent, if any. */
  closeFrame: { code: number; reason: string } | null = null;
  /** True once the TCP connection ended. */
  ended = false;
  bytesReceived = 0;
  private buf = Buffer.alloc(0);
  private headDone = false;
  private listeners = new Set<() => void>();
  private constructor(private socket: Socket<undefined>) {}

  static async connect(url: string, headers: Record<string, string> = {}, timeoutMs = 3000): Promise<RawWebSocket> {
    const req = upgradeRequest(url, headers);
    let self!: RawWebSocket;
    const socket = await Bun.connect({
      hostname: req.host,
      port: req.port,
      socket: {
        data(_s, chunk) {
          self.onData(chunk);
        },
        close() {
          self.ended = true;
          self.wake();
        },
        end() {
          self.ended = true;
          self.wake();
        },
        error() {
          self.ended = true;
          self.wake();
        },
      },
    });
    self = new RawWebSocket(socket);
    socket.write(req.text);
    await self.until(() => self.headDone || (self.ended && self.buf.length === 0 ? "ended" : false), timeoutMs, "upgrade response");
    if (!self.headDone) throw new Error("connection closed before any HTTP response");
    if (self.response.status !== 101) {
      // Read the body (Content-Length) for error details, bounded.
      const len = Number(self.response.headers["content-length"] ?? 0);
      await self.until(() => self.buf.length >= len || self.ended, 1000, "response body").catch(() => {});
      self.response.body = self.buf.subarray(0, len || self.buf.length).toString("utf8");
    }
    return self;
  }

  private wake() {
    for (const l of [...this.listeners]) l();
  }

  private onData(chunk: Uint8Array) {
    this.bytesReceived += chunk.length;
    this.buf = Buffer.concat([this.buf, chunk]);
    if (!this.headDone) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const { status, headers } = parseHead(this.buf.subarray(0, end).toString("latin1"));
      this.response = { status, headers, body: "" };
      this.buf = this.buf.subarray(end + 4);
      this.headDone = true;
    }
    if (this.response.status === 101) this.parseFrames();
    this.wake();
  }

  private parseFrames() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const opcode = b[0]! & 0x0f;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b.length < off + len) return;
      const payload = b.subarray(off, off + len);
      this.buf = b.subarray(off + len);
      if (opcode === 1 || opcode === 0) this.texts.push(payload.toString("utf8"));
      else if (opcode === 8) {
        this.closeFrame = { code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString("utf8") };
      }
    }
  }

  until<T>(cond: () => T | false | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = cond();
        if (v !== undefined && v !== false) {
          clearTimeout(timer);
          this.listeners.delete(check);
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`raw socket: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  /** Sends a masked text frame (clients must mask). */
  sendText(text: string): void {
    this.sendFrame(0x1, Buffer.from(text, "utf8"));
  }

  /** Sends one final, masked frame with any opcode and payload (even invalid UTF-8 in a text frame). */
  sendFrame(opcode: number, payload: Uint8Array): void {
    const mask = crypto.getRandomValues(new Uint8Array(4));
    const len = payload.length;
    const head = len < 126 ? Buffer.alloc(2) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    if (len < 126) head[1] = 0x80 | len;
    else if (len < 65536) {
      head[1] = 0x80 | 126;
      head.writeUInt16BE(len, 2);
    } else {
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(len), 2);
    }
    const masked = Buffer.alloc(len);
    for (let i = 0; i < len; i++) masked[i] = payload[i]! ^ mask[i & 3]!;
    this.socket.write(Buffer.concat([head, Buffer.from(mask), masked]));
  }

  send(frame: unknown): void {
    this.sendText(JSON.stringify(frame));
  }

  /** Parsed JSON text frames received so far. */
  frames(): Frame[] {
    return this.texts.map((t) => JSON.parse(t) as Frame);
  }

  waitFrame(pred: (f: Frame) => boolean, timeoutMs = 3000, what = "a frame"): Promise<Frame> {
    return this.until(() => this.frames().find(pred), timeoutMs, what);
  }

  /** Stops reading from the kernel: the server's writes pile up in TCP buffers, then in its own. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  destroy(): void {
    try {
      this.socket.terminate();
    } catch {}
    this.ended = true;
  }
}
