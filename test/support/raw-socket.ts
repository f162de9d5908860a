/**
 * WebSocket at the byte level, for what Bun's WebSocket client cannot show:
 * - `upgradeStatus`: the HTTP status of a refused upgrade (a WebSocket client only sees 1006);
 * - `RawWebSocket`: a minimal client over a raw TCP socket that can stop reading from the kernel
 *   (`pause`) to play a stalled consumer, and can send frames Bun would refuse to (invalid UTF-8).
 */
import type { Socket } from "bun";
import type { Frame } from "./client.ts";
import { takeFrame } from "./raw-ws.ts";

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
  private buf: Buffer = Buffer.alloc(0);
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
    for (let frame = takeFrame(this.buf); frame !== null; frame = takeFrame(this.buf)) {
      this.buf = frame.rest;
      const { opcode, payload } = frame;
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
