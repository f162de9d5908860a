/**
 * The chaos run's publishers: half the publications over WebSocket (`publish` frames), half over
 * `POST /api/publish`, each with a key of its own that every retry sends again (as the SDK does).
 * A publication is retried on `unavailable`, on no answer, and on a refused connection, until it is
 * acked or 30 s have passed. Every attempt and what it was told is recorded for the checker.
 */
import type { Attempt, PublishRecord } from "./log.ts";

export interface PublishersOptions {
  topics: string[];
  cookie: string;
  /** Ports of the servers running now. */
  ports(): number[];
  allPorts: number[];
  apiKey: string;
  /** Publications per second, both kinds together. */
  rate: number;
  random: () => number;
}

const ANSWER_TIMEOUT_MS = 2000;
const GIVE_UP_MS = 30_000;
const MAX_IN_FLIGHT = 60;

const BunWebSocket = WebSocket as unknown as new (url: string, options: { headers: Record<string, string> }) => WebSocket;

/** A publishing socket that reconnects by itself and matches answers by `ref`. */
class WsLink {
  private ws: WebSocket | null = null;
  private ready = false;
  private nextRef = 1;
  private closed = false;
  private readonly waiting = new Map<number, (frame: any | null) => void>();

  constructor(private readonly options: PublishersOptions) {
    this.open();
  }

  private open(): void {
    if (this.closed) return;
    const ports = this.options.allPorts;
    const port = ports[Math.floor(this.options.random() * ports.length)]!;
    const ws = new BunWebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { Cookie: this.options.cookie } });
    this.ws = ws;
    ws.addEventListener("message", (ev) => {
      const frame = JSON.parse(String(ev.data));
      if (frame.type === "welcome") this.ready = true;
      const answer = frame.ref === undefined ? undefined : this.waiting.get(frame.ref);
      if (answer !== undefined && (frame.type === "ack" || frame.type === "error")) {
        this.waiting.delete(frame.ref);
        answer(frame);
      }
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ready = false;
      for (const answer of this.waiting.values()) answer(null);
      this.waiting.clear();
      setTimeout(() => this.open(), 100 + this.options.random() * 400);
    });
    ws.addEventListener("error", () => {});
  }

  /** The answer frame; null when the socket closed or nothing came in time; undefined when not connected. */
  async request(frame: Record<string, unknown>): Promise<any | null | undefined> {
    if (!this.ready || this.ws === null) return undefined;
    const ref = this.nextRef++;
    const answer = new Promise<any | null>((resolve) => {
      this.waiting.set(ref, resolve);
      setTimeout(() => {
        if (this.waiting.delete(ref)) resolve(null);
      }, ANSWER_TIMEOUT_MS);
    });
    this.ws.send(JSON.stringify({ ...frame, ref }));
    return answer;
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }
}

export class Publishers {
  private readonly published: PublishRecord[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly links: WsLink[];
  private timer: ReturnType<typeof setInterval> | null = null;
  private n = 0;

  constructor(private readonly options: PublishersOptions) {
    this.links = [new WsLink(options), new WsLink(options)];
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.inFlight.size >= MAX_IN_FLIGHT) return;
      const done = this.publishOne().finally(() => this.inFlight.delete(done));
      this.inFlight.add(done);
    }, 1000 / this.options.rate);
  }

  /** Stops starting publications and waits for those under way (their retries included). */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await Promise.all([...this.inFlight]);
    for (const link of this.links) link.close();
  }

  records(): PublishRecord[] {
    return this.published;
  }

  /**
   * `count` publications of `bytes` of padding each over the HTTP API, `parallel` at a time, all
   * kept and checked like the others: the load that makes a stalled reader a slow consumer.
   */
  async burst(count: number, bytes: number, parallel = 8): Promise<void> {
    let left = count;
    const lane = async () => {
      while (left-- > 0) await this.publishOne("http", "x".repeat(bytes));
    };
    const done = Promise.all(Array.from({ length: parallel }, lane)).then(() => {});
    this.inFlight.add(done);
    await done.finally(() => this.inFlight.delete(done));
  }

  private async publishOne(only?: "http", pad?: string): Promise<void> {
    const n = this.n++;
    const via = only ?? (n % 2 === 0 ? "ws" : "http");
    const topic = this.options.topics[Math.floor(this.options.random() * this.options.topics.length)]!;
    const key = `${via}-${n}`;
    const record: PublishRecord = { key, topic, via, data: pad === undefined ? { k: key, via, n } : { k: key, via, n, pad }, attempts: [] };
    this.published.push(record);
    const first = Date.now();
    while (Date.now() - first < GIVE_UP_MS) {
      const attempt = via === "ws" ? await this.overSocket(record) : await this.overHttp(record);
      if (attempt === null) {
        await Bun.sleep(50);
        continue;
      }
      record.attempts.push(attempt);
      if (attempt.outcome === "acked") return;
      await Bun.sleep(100 + this.options.random() * 400);
    }
  }

  /** null: no socket is connected now (nothing was sent, not an attempt). */
  private async overSocket(record: PublishRecord): Promise<Attempt | null> {
    const link = this.links[Math.floor(this.options.random() * this.links.length)]!;
    const t0 = Date.now();
    const answer = await link.request({ type: "publish", topic: record.topic, data: record.data, key: record.key });
    if (answer === undefined) return null;
    const t1 = Date.now();
    if (answer === null) return { t0, t1, outcome: "timeout" };
    if (answer.type === "ack") return { t0, t1, outcome: "acked", seq: answer.seq, epoch: answer.epoch };
    return { t0, t1, outcome: answer.code === "unavailable" ? "unavailable" : "error", detail: answer.code };
  }

  private async overHttp(record: PublishRecord): Promise<Attempt | null> {
    const ports = this.options.ports();
    if (ports.length === 0) return null;
    const port = ports[Math.floor(this.options.random() * ports.length)]!;
    const t0 = Date.now();
    try {
      const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${this.options.apiKey}` },
        body: JSON.stringify({ topic: record.topic, data: record.data, key: record.key }),
        signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS),
      });
      const body = (await res.json().catch(() => null)) as any;
      const t1 = Date.now();
      if (res.status === 202) return { t0, t1, outcome: "acked", seq: body.seq, epoch: body.epoch };
      return { t0, t1, outcome: res.status === 503 ? "unavailable" : "error", detail: `${res.status} ${JSON.stringify(body)}` };
    } catch (error) {
      const refused = (error as { code?: string }).code === "ConnectionRefused";
      return { t0, t1: Date.now(), outcome: refused ? "error" : "timeout", detail: String(error) };
    }
  }
}
