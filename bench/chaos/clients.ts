/**
 * One chaos client process (bench/chaos.ts starts several): `count` raw WebSocket clients that
 * behave as the SDK does (docs/client.md "What happens on a reconnect"): full-jitter backoff,
 * resubscribe with `since` = the last position held, a refused subscribe sent again after a
 * jittered delay. Each client logs every frame it got and every subscribe it sent; the log is the
 * checker's input (bench/chaos/check.ts).
 *
 * Its own process so that the orchestrator can SIGSTOP it: a client that stops reading is a slow
 * consumer as the server sees one. Commands come on stdin, one a line: `positions` (prints every
 * client's positions as one JSON line), `stop <file>` (closes, writes the logs to <file>, exits).
 *
 *   bun bench/chaos/clients.ts '<json Config>'
 */
import { writeFileSync } from "node:fs";
import { type ClientLog, type LogEvent, type Position, mulberry32 } from "./log.ts";

interface Config {
  name: string;
  count: number;
  ports: number[];
  cookies: string[];
  topics: string[];
  seed: number;
}

const BunWebSocket = WebSocket as unknown as new (url: string, options: { headers: Record<string, string> }) => WebSocket;

const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 2000;

class ChaosClient {
  readonly events: LogEvent[] = [];
  readonly positions = new Map<string, Position>();
  private ws: WebSocket | null = null;
  private conn = 0;
  private attempt = 0;
  private nextRef = 1;
  private stopped = false;
  private readonly pending = new Map<number, { topic: string; since: Position | null; refusals: number }>();
  private readonly subscribed = new Set<string>();

  constructor(
    readonly id: string,
    private readonly cookie: string,
    private readonly ports: number[],
    private readonly topics: string[],
    private readonly random: () => number,
  ) {}

  private log(event: LogEvent extends infer E ? (E extends LogEvent ? Omit<E, "t" | "conn"> : never) : never): void {
    this.events.push({ t: Date.now(), conn: this.conn, ...event } as LogEvent);
  }

  connect(): void {
    if (this.stopped) return;
    const port = this.ports[Math.floor(this.random() * this.ports.length)]!;
    this.conn += 1;
    const conn = this.conn;
    this.pending.clear();
    this.subscribed.clear();
    this.log({ kind: "connect", port });
    const ws = new BunWebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { Cookie: this.cookie } });
    this.ws = ws;
    ws.addEventListener("message", (ev) => {
      if (conn === this.conn && typeof ev.data === "string") this.onFrame(JSON.parse(ev.data));
    });
    ws.addEventListener("close", (ev) => {
      if (conn !== this.conn) return;
      this.log({ kind: "close", code: ev.code });
      this.ws = null;
      this.scheduleReconnect();
    });
    ws.addEventListener("error", () => {});
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt += 1;
    setTimeout(() => this.connect(), this.random() * ceiling);
  }

  private subscribe(topic: string, refusals = 0): void {
    if (this.ws === null || this.ws.readyState !== WebSocket.OPEN) return;
    const ref = this.nextRef++;
    const since = this.positions.get(topic) ?? null;
    this.pending.set(ref, { topic, since, refusals });
    this.log({ kind: "subscribe", ref, topic, since });
    this.ws.send(JSON.stringify(since === null ? { type: "subscribe", topic, ref } : { type: "subscribe", topic, ref, since }));
  }

  private onFrame(frame: any): void {
    if (frame.type === "welcome") {
      this.attempt = 0;
      this.log({ kind: "frame", frame: { type: "welcome", instance: frame.instance } });
      for (const topic of this.topics) this.subscribe(topic);
      return;
    }
    if (frame.type === "message" || frame.type === "resync") {
      if (!this.topics.includes(frame.topic)) return;
      this.log({ kind: "frame", frame });
      this.advance(frame.topic, { epoch: frame.epoch, seq: frame.seq }, frame.type === "resync");
      return;
    }
    if ((frame.type === "ack" || frame.type === "error") && this.pending.has(frame.ref)) {
      const sub = this.pending.get(frame.ref)!;
      this.pending.delete(frame.ref);
      this.log({ kind: "frame", frame });
      if (frame.type === "error") {
        // The SDK sends a refused resubscription again after a jittered delay (docs/client.md).
        const delay = this.random() * Math.min(10_000, 500 * 2 ** sub.refusals);
        setTimeout(() => this.subscribe(sub.topic, sub.refusals + 1), delay);
        return;
      }
      this.subscribed.add(sub.topic);
      if (sub.since === null || frame.recovered !== true) this.positions.set(sub.topic, { epoch: frame.epoch, seq: frame.seq });
    }
  }

  /** The SDK's rule: a message above the position (or of another epoch) moves it; a resync sets it. */
  private advance(topic: string, at: Position, reset: boolean): void {
    const held = this.positions.get(topic);
    if (reset || held === undefined || held.epoch !== at.epoch || at.seq > held.seq) this.positions.set(topic, at);
  }

  /** Every topic subscribed on an open socket, with its position. */
  report(): { id: string; open: boolean; positions: Record<string, Position | null> } {
    const positions: Record<string, Position | null> = {};
    for (const topic of this.topics) positions[topic] = this.subscribed.has(topic) ? (this.positions.get(topic) ?? null) : null;
    return { id: this.id, open: this.ws?.readyState === WebSocket.OPEN, positions };
  }

  stop(): ClientLog {
    this.stopped = true;
    this.ws?.close();
    return { id: this.id, events: this.events };
  }
}

const config = JSON.parse(process.argv[2]!) as Config;
const random = mulberry32(config.seed);
const clients = Array.from(
  { length: config.count },
  (_, i) => new ChaosClient(`${config.name}.${i}`, config.cookies[i % config.cookies.length]!, config.ports, config.topics, mulberry32(Math.floor(random() * 2 ** 32))),
);
for (const client of clients) client.connect();

let input = "";
for await (const chunk of Bun.stdin.stream()) {
  input += new TextDecoder().decode(chunk);
  let end: number;
  while ((end = input.indexOf("\n")) >= 0) {
    const [command, arg] = input.slice(0, end).split(" ");
    input = input.slice(end + 1);
    if (command === "positions") console.log(JSON.stringify(clients.map((c) => c.report())));
    if (command === "stop") {
      writeFileSync(arg!, JSON.stringify(clients.map((c) => c.stop())));
      console.log("stopped");
      process.exit(0);
    }
  }
}
