/**
 * RespLink: one connection to one Redis (`redis://`) on `Bun.connect`, for the broker's publish
 * path (broker/redis-publish.ts) and its subscriber (broker/redis-subscriber.ts). It carries their
 * few commands with less CPU and latency than ioredis (issue 17, rounds eight and nine), and unlike
 * Bun's own RedisClient it sees its socket close, names Redis's errors like ioredis (`ReplyError`)
 * and never gives up reconnecting.
 *
 * The rules of connection.ts's clients hold here too:
 * - nothing is queued while the link is down: a command then rejects at once;
 * - nothing is resent: commands in flight when the connection closes reject ("Connection is closed.");
 * - a command without a reply after `commandTimeoutMs` rejects ("Command timed out"), counted as
 *   command-deadline.ts counts it (one more turn, or the time a stalled process lost); its late
 *   reply keeps its place in the FIFO and is dropped;
 * - a Redis that stops answering (stopped, half-open link) is noticed: two deadlines in a row that
 *   passed with no reply in between drop the connection and open a new one. After a first missed
 *   deadline a PING is sent, so even a lone publish leads to the replacement; an idle link is
 *   PINGed on every `tick()`;
 * - reconnects with `retryDelay` until `close()`, which leaves no timer or socket behind.
 *
 * Writes: the first command of an event-loop turn is written at once (one publish in flight waits
 * for nothing); the others of that turn leave together when the turn ends (`setImmediate`), like
 * tick-cork.ts on the ioredis connection.
 */
import type { Socket } from "bun";
import { grace } from "./command-deadline.ts";
import { retryDelay } from "./connection.ts";
import { encodeCommand, type Reply, ReplyError, ReplyReader } from "./resp.ts";

export interface RespLinkOptions {
  /** redis://[user:password@]host[:port][/db] */
  url: string;
  /** CLIENT SETNAME. */
  name: string;
  commandTimeoutMs: number;
  /** How long opening the connection and its handshake may take. Default 2000 (ioredis's connectTimeout). */
  connectTimeoutMs?: number;
  /** Each time the link is ready (connected, authenticated, named). */
  onReady(): void;
  /** The ready link was lost. */
  onDown(): void;
  onError(error: Error): void;
  onMessage?(channel: string, payload: string): void; // pub/sub messages (a subscriber's link): they answer no command
}

interface Pending {
  resolve(reply: Reply): void;
  reject(error: Error): void;
  due: number;
  settled: boolean;
  left: number; // replies still to come: (UN)SUBSCRIBE confirms each channel with one of its own
}

type State = "down" | "connecting" | "ready" | "closed";

export class RespLink {
  private state: State = "down";
  private socket: Socket<undefined> | null = null;
  /** Which connection attempt is current: events of an older socket are ignored. */
  private generation = 0;
  private attempts = 0;
  private readonly pending: Pending[] = [];
  private readonly reader: ReplyReader;
  private outbox = "";
  private outboxBytes = 0;
  private turnOpen = false;
  /** Bytes the socket did not take yet (a partial write); everything else waits behind them. */
  private unsent: Buffer | null = null;
  private deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private missedInARow = 0;
  private readonly target: { hostname: string; port: number; handshake: string[][] };

  constructor(private readonly options: RespLinkOptions) {
    const url = new URL(options.url);
    const handshake: string[][] = [];
    const password = decodeURIComponent(url.password);
    if (password !== "") handshake.push(url.username === "" ? ["AUTH", password] : ["AUTH", decodeURIComponent(url.username), password]);
    const db = Number(url.pathname.slice(1) || 0);
    if (db !== 0) handshake.push(["SELECT", String(db)]);
    handshake.push(["CLIENT", "SETNAME", options.name.replace(/[^A-Za-z0-9_.:-]/g, "_")]);
    this.reader = new ReplyReader((reply) => this.answer(reply), options.onMessage);
    this.target = { hostname: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 6379), handshake };
  }

  get ready(): boolean {
    return this.state === "ready";
  }

  /** Starts connecting (and keeps reconnecting until `close`). */
  connect(): void {
    if (this.state !== "down") return;
    this.state = "connecting";
    const generation = ++this.generation;
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => this.drop(generation, new Error("Connection timed out")), this.options.connectTimeoutMs ?? 2000);
    const settled = () => {
      if (current()) clearTimeout(this.connectTimer);
    };
    const current = () => generation === this.generation;
    Bun.connect({
      hostname: this.target.hostname,
      port: this.target.port,
      socket: {
        data: (_socket, chunk) => {
          if (current()) this.onData(chunk);
        },
        drain: () => {
          if (current()) this.flushUnsent();
        },
        close: () => this.drop(generation, new Error("Connection is closed.")),
        error: (_socket, error) => this.drop(generation, error),
        connectError: () => {},
      },
    }).then(
      (socket) => {
        if (!current()) return void socket.terminate();
        socket.setNoDelay(true);
        this.socket = socket;
        void this.handshake(generation).finally(settled);
      },
      (error: Error) => {
        settled();
        this.drop(generation, error);
      },
    );
  }

  /** Sends one command; rejects at once when the link is not ready. Resolves with the last of its `replies` (SUBSCRIBE: one per channel). */
  send(args: readonly (string | number)[], replies = 1): Promise<Reply> {
    return this.state === "ready" ? this.enqueue(args, replies) : Promise.reject(new Error("Connection is not ready"));
  }

  /** Drops the connection and opens a new one (what is out rejects). */
  reconnect(): void {
    if (this.state === "ready" || this.state === "connecting") this.drop(this.generation, new Error("reconnect asked"));
  }

  /** Called every canary interval: an idle ready link is PINGed, so a dead one is noticed and replaced. */
  tick(): void {
    if (this.state === "ready" && this.pending.length === 0) this.enqueue(["PING"]).catch(() => {});
  }

  close(): void {
    if (this.state === "closed") return;
    this.generation++;
    this.state = "closed";
    clearTimeout(this.retryTimer);
    clearTimeout(this.connectTimer);
    this.failAll(new Error("Connection is closed."));
    this.socket?.terminate();
    this.socket = null;
  }

  private async handshake(generation: number): Promise<void> {
    try {
      await Promise.all(this.target.handshake.map((command) => this.enqueue(command)));
    } catch (error) {
      this.drop(generation, error as Error);
      return;
    }
    if (generation !== this.generation) return;
    this.state = "ready";
    this.attempts = 0;
    this.options.onReady();
  }

  private enqueue(args: readonly (string | number)[], replies = 1): Promise<Reply> {
    const { text, bytes } = encodeCommand(args);
    const promise = new Promise<Reply>((resolve, reject) => {
      this.pending.push({ resolve, reject, due: performance.now() + this.options.commandTimeoutMs, settled: false, left: replies });
    });
    this.deadlineTimer ??= setTimeout(this.checkDeadlines, this.options.commandTimeoutMs);
    this.write(text, bytes);
    return promise;
  }

  private write(text: string, bytes: number): void {
    if (this.turnOpen || this.unsent !== null) {
      this.outbox += text;
      this.outboxBytes += bytes;
      return;
    }
    this.turnOpen = true;
    setImmediate(this.endTurn);
    this.writeNow(text, bytes);
  }

  private readonly endTurn = (): void => {
    this.turnOpen = false;
    if (this.unsent !== null || this.outbox === "") return;
    const text = this.outbox;
    const bytes = this.outboxBytes;
    this.outbox = "";
    this.outboxBytes = 0;
    this.writeNow(text, bytes);
  };

  private writeNow(text: string, bytes: number): void {
    if (this.socket === null) return;
    const written = Math.max(0, this.socket.write(text));
    if (written < bytes) this.unsent = Buffer.from(text).subarray(written);
  }

  private flushUnsent(): void {
    const socket = this.socket;
    if (this.unsent === null || socket === null) return;
    const written = Math.max(0, socket.write(this.unsent));
    this.unsent = written < this.unsent.length ? this.unsent.subarray(written) : null;
    if (this.unsent === null && !this.turnOpen) this.endTurn();
  }

  private onData(chunk: Buffer): void {
    try {
      this.reader.feed(chunk);
    } catch (error) {
      this.drop(this.generation, error as Error);
    }
  }

  private answer(reply: Reply): void {
    this.missedInARow = 0;
    const command = this.pending[0];
    if (command === undefined) throw new Error("a reply nobody asked for");
    // An error reply is the whole command's (Redis refused it before running it).
    if (--command.left > 0 && !(reply instanceof ReplyError)) return;
    this.pending.shift();
    if (command.settled) return; // timed out: its late reply only keeps the order
    command.settled = true;
    if (reply instanceof ReplyError) command.reject(reply);
    else command.resolve(reply);
  }

  /** The oldest command's deadline: armed while commands are out, one timer for all of them. */
  private readonly checkDeadlines = (): void => {
    const oldest = this.pending.find((command) => !command.settled);
    if (oldest === undefined) {
      this.deadlineTimer = undefined;
      return;
    }
    const wait = oldest.due - performance.now();
    if (wait > 1) {
      this.deadlineTimer = setTimeout(this.checkDeadlines, wait);
      return;
    }
    const [generation, cutoff] = [this.generation, oldest.due];
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = undefined;
      if (generation !== this.generation) return;
      let missed = false;
      for (const command of this.pending) {
        if (command.settled || command.due > cutoff + 1) continue;
        command.settled = true;
        command.reject(new Error("Command timed out"));
        missed = true;
      }
      if (missed) this.missed(generation);
      if (this.pending.some((command) => !command.settled)) this.deadlineTimer ??= setTimeout(this.checkDeadlines, 0);
    }, grace(cutoff, this.options.commandTimeoutMs));
  };

  /** A deadline passed with no reply: a second in a row replaces the connection; a first sends a PING to find out. */
  private missed(generation: number): void {
    if (++this.missedInARow >= 2) {
      this.options.onError(new Error("Redis does not answer: reconnecting"));
      this.drop(generation, new Error("Redis does not answer"));
      return;
    }
    if (this.state === "ready") this.enqueue(["PING"]).catch(() => {});
  }

  /** The connection `generation` is lost (or given up): fail what is out, reconnect later. */
  private drop(generation: number, error: Error): void {
    if (generation !== this.generation || this.state === "closed") return;
    this.generation++;
    const wasReady = this.state === "ready";
    this.state = "down";
    this.socket?.terminate();
    this.socket = null;
    clearTimeout(this.connectTimer);
    this.failAll(new Error("Connection is closed.", { cause: error }));
    if (wasReady) this.options.onDown();
    else this.options.onError(error);
    this.retryTimer = setTimeout(() => this.connect(), retryDelay(++this.attempts));
  }

  private failAll(error: Error): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    this.missedInARow = 0;
    const commands = this.pending.splice(0);
    for (const command of commands) {
      if (command.settled) continue;
      command.settled = true;
      command.reject(error);
    }
    this.reader.reset();
    [this.unsent, this.outbox, this.outboxBytes] = [null, "", 0];
  }
}
