/**
 * Test clients that see exactly what a real client sees.
 *
 * - `TestClient`: Bun's WebSocket with custom headers (Cookie, Origin); records every frame and
 *   the close code/reason. A refused upgrade shows up here only as close 1006, as in a browser.
 * - For a refused upgrade's HTTP status, frames a client must not send, or a stalled reader, use
 *   the raw peer of raw-ws.ts (`RawPeer`, `upgradeStatus`).
 */

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
