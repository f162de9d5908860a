/**
 * One socket's life: authentication state, a queue that handles its frames strictly in arrival
 * order (Bun runs async `message` handlers concurrently), the flood rules, and the frame
 * handlers. Everything it does to other sockets goes through the gateway.
 */
import type { ServerWebSocket } from "bun";
import type { ZodError } from "zod";
import { ClientFrame, type Position, type User } from "../protocol/frames.ts";
import { Close, ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { authorize, inboxOf, isValidTopic, TOPIC_RULE, type Actor } from "../protocol/topics.ts";
import type { Ack, Member } from "./hub.ts";
import type { Registered } from "./registry.ts";
import { RejectionRun, TokenBucket } from "./rate.ts";
import type { Gateway } from "./gateway.ts";
import { errorFields } from "../log.ts";
import { describeZod, parseJson, whyNotJson } from "../protocol/parse.ts";

export interface SocketData {
  conn: Connection;
}

export type AuthMode = "cookie" | "ticket" | "token";

export interface ConnectionInit {
  id: string;
  ip: string;
  authMode: AuthMode;
  /** Known at upgrade for cookie and ticket sockets; null until the first frame for token ones. */
  user: User | null;
  sid: string | null;
  /** Session expiry (epoch seconds), when known. */
  expiresAt: number | null;
}

type State = "awaiting-auth" | "authenticating" | "open" | "closed";

/** Past this many queued frames the socket stops being read until the queue drains. */
const PAUSE_AT = 32;
/** Publishes of one socket waiting for the broker before its queue waits for them too. */
const MAX_PUBLISHES_IN_FLIGHT = 64;

export class Connection implements Member, Registered {
  readonly id: string;
  readonly ip: string;
  readonly authMode: AuthMode;
  userId: string | null;
  sid: string | null;
  user: User | null;
  expiresAt: number | null;
  ws: ServerWebSocket<SocketData> | null = null;
  /** Topics this socket is a hub member of (subscribed, or being subscribed). */
  readonly topics = new Set<string>();
  /**
   * Topics whose presence this socket joined: those it subscribed with a `subscribe` frame. The
   * inbox joined at welcome is not among them, which keeps a handshake free of presence writes.
   */
  readonly present = new Set<string>();
  readonly openedAt = Date.now();
  /** When the sweep closes this socket with 1012 (MAX_CONNECTION_AGE_S), or null. */
  readonly retireAt: number | null;
  private state: State;
  /** Frames (and internal jobs, such as the welcome) waiting to be handled, oldest first. */
  private readonly queue: (string | (() => Promise<void>))[] = [];
  private running = false;
  private publishesInFlight = 0;
  private paused = false;
  private readonly bucket: TokenBucket;
  private readonly rejections = new RejectionRun();
  private authTimer: ReturnType<typeof setTimeout> | null = null;
  private killTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly gw: Gateway,
    init: ConnectionInit,
  ) {
    this.id = init.id;
    this.ip = init.ip;
    this.authMode = init.authMode;
    this.user = init.user;
    this.userId = init.user?.id ?? null;
    this.sid = init.sid;
    this.expiresAt = init.expiresAt;
    this.state = init.user === null ? "awaiting-auth" : "authenticating";
    this.bucket = new TokenBucket(gw.config.rateLimitPerS, gw.config.rateLimitBurst, this.openedAt);
    this.retireAt = gw.retireAt(this.openedAt);
  }

  get isOpen(): boolean {
    return this.state === "open";
  }

  // ── Bun events ────────────────────────────────────────────────────────────

  opened(ws: ServerWebSocket<SocketData>): void {
    this.ws = ws;
    if (this.state === "closed") {
      ws.close(Close.restarting, "server restarting");
      return;
    }
    if (this.user !== null) {
      this.run(() => this.welcome());
      return;
    }
    this.authTimer = setTimeout(() => {
      this.authTimer = null;
      if (this.state === "awaiting-auth" || (this.state === "authenticating" && this.user === null)) {
        this.gw.noteAuthFailure("timeout", { connectionId: this.id, ip: this.ip });
        this.close(Close.authTimeout, "authentication timeout");
      }
    }, this.gw.config.authTimeoutMs);
  }

  received(message: string | Buffer): void {
    if (this.state === "closed") return;
    if (typeof message !== "string") {
      this.close(Close.unsupportedData, "binary frames are not part of the protocol");
      return;
    }
    const now = Date.now();
    if (!this.bucket.take(now)) {
      if (this.rejections.reject(now)) {
        this.close(Close.rateLimited, "rate limited");
        return;
      }
      this.gw.metrics.rateLimited.inc();
      // A refused frame is not worth parsing in full: only a small one gets its ref echoed.
      const ref = message.length <= REF_PARSE_MAX ? refOf(parseJson(message)) : undefined;
      this.sendError(ref, new SwitchboardError(ErrorCode.rateLimited, "too many frames; slow down"));
      return;
    }
    this.queue.push(message);
    if (this.queue.length >= PAUSE_AT && !this.paused && this.ws !== null) {
      this.paused = true;
      this.ws.pause();
    }
    if (!this.running) void this.pump();
  }

  /** Bun `close`: the socket is gone. Frees everything it held; idempotent. */
  closed(): void {
    if (this.state === "closed" && this.ws === null) return;
    this.state = "closed";
    this.queue.length = 0;
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    if (this.killTimer !== null) clearTimeout(this.killTimer);
    this.authTimer = this.killTimer = null;
    this.ws = null;
    this.gw.forget(this);
    for (const topic of this.topics) this.gw.leaveTopic(this, topic);
    this.topics.clear();
  }

  // ── Member (hub) ─────────────────────────────────────────────────────────

  send(frame: string): void {
    const ws = this.ws;
    if (ws === null || this.state === "closed") return;
    this.gw.metrics.frameOut(frame);
    if (ws.send(frame, false) === 0) this.closeSlow();
  }

  subscribeLocal(topic: string): void {
    if (this.ws !== null && this.state !== "closed") this.ws.subscribe(topic);
  }

  unsubscribeLocal(topic: string): void {
    if (this.ws !== null && this.state !== "closed") this.ws.unsubscribe(topic);
  }

  // ── Closing ──────────────────────────────────────────────────────────────

  /** Closes with a SPEC close code; the socket is forgotten when Bun reports it closed. */
  close(code: number, reason: string): void {
    const ws = this.ws;
    if (this.state === "closed") return;
    this.state = "closed";
    this.queue.length = 0;
    if (ws === null) return; // not open yet: `opened` closes it
    this.gw.noteClose(code);
    ws.close(code, reason);
    // A peer that never reads cannot take the close frame: cut it after a grace period.
    this.killTimer = setTimeout(() => ws.terminate(), 2000);
  }

  /** A socket whose unsent bytes passed the backpressure limit: never let it miss silently. */
  closeSlow(): void {
    const ws = this.ws;
    if (ws === null || this.state === "closed") return;
    for (const topic of this.topics) ws.unsubscribe(topic);
    this.gw.noteSlowConsumer();
    this.close(Close.slowConsumer, "slow consumer");
  }

  // ── Frames ───────────────────────────────────────────────────────────────

  private run(job: () => Promise<void>): void {
    this.queue.push(job);
    if (!this.running) void this.pump();
  }

  /** Handles queued frames one at a time, in arrival order. */
  private async pump(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && this.state !== "closed") {
        const next = this.queue.shift()!;
        await (typeof next === "string" ? this.handle(next) : next());
        if (this.paused && this.queue.length === 0 && this.ws !== null) {
          this.paused = false;
          this.ws.resume();
        }
      }
    } catch (error) {
      this.gw.log.error("connection failed", { connectionId: this.id, ...errorFields(error) });
      this.close(Close.internal, "internal error");
    } finally {
      this.running = false;
    }
  }

  private async handle(raw: string): Promise<void> {
    const parsed = parseJson(raw);
    if (this.state === "awaiting-auth") return this.authenticate(parsed);
    const ref = refOf(parsed);
    if (parsed === undefined) {
      this.gw.metrics.framesIn.inc({ type: "invalid" });
      const why = whyNotJson(raw, "frame");
      this.sendError(ref, new SwitchboardError(ErrorCode.badRequest, why));
      return;
    }
    const result = ClientFrame.safeParse(parsed);
    if (!result.success) {
      this.gw.metrics.framesIn.inc({ type: "invalid" });
      this.sendError(ref, new SwitchboardError(ErrorCode.badRequest, describe(result.error)));
      return;
    }
    this.gw.metrics.framesIn.inc({ type: result.data.type });
    try {
      await this.dispatch(result.data);
    } catch (error) {
      this.sendError(ref, error);
    }
  }

  private async dispatch(frame: ClientFrame): Promise<void> {
    const actor: Actor = { kind: "user", userId: this.user!.id };
    switch (frame.type) {
      case "auth":
        throw new SwitchboardError(ErrorCode.badRequest, "already authenticated");
      case "ping":
        this.sendJson({ type: "pong", ref: frame.ref });
        return;
      case "subscribe": {
        authorize(actor, "subscribe", frame.topic);
        await this.join(frame.topic, frame.since, frame.ref);
        return;
      }
      case "unsubscribe": {
        if (!isValidTopic(frame.topic)) throw new SwitchboardError(ErrorCode.badRequest, TOPIC_RULE);
        if (this.topics.delete(frame.topic)) this.gw.leaveTopic(this, frame.topic);
        this.sendJson({ type: "ack", ref: frame.ref, topic: frame.topic });
        return;
      }
      case "publish": {
        authorize(actor, "publish", frame.topic);
        // Publishes are pipelined: each is handed to the broker in arrival order (one ordering
        // point per topic, one FIFO connection), and the queue moves on without waiting for the
        // round trip. Acks come back in the same order. At most MAX_PUBLISHES_IN_FLIGHT wait.
        const { ref, topic } = frame;
        this.publishesInFlight += 1;
        const acked = this.gw.publish(topic, { from: this.user!.id, data: frame.data, ts: Date.now(), key: frame.key }).then(
          (result) => this.sendJson({ type: "ack", ref, topic, seq: result.seq, epoch: result.epoch }),
          (error: unknown) => this.sendError(ref, error),
        );
        void acked.finally(() => (this.publishesInFlight -= 1));
        if (this.publishesInFlight >= MAX_PUBLISHES_IN_FLIGHT) await acked;
        return;
      }
      case "presence": {
        authorize(actor, "subscribe", frame.topic);
        const members = await this.gw.services.presence.members(frame.topic);
        this.sendJson({ type: "presence", ref: frame.ref, topic: frame.topic, members });
        return;
      }
    }
  }

  /** Subscribes to a topic and joins its presence. */
  /**
   * Presence is written first, so once a client holds the `ack` it is listed everywhere. The
   * joiner itself is not subscribed yet when its own `presence.join` goes out; it learns the
   * members from a `presence` request.
   */
  private async join(topic: string, since: Position | undefined, ref: number | undefined): Promise<void> {
    this.topics.add(topic);
    await this.gw.joinPresence(this, topic);
    if (this.state === "closed" || !this.topics.has(topic)) return;
    try {
      await this.follow(topic, since, (ack) => {
        if (since !== undefined) this.gw.metrics.recoveries.inc({ recovered: String(ack.recovered) });
        this.sendJson({ type: "ack", ref, topic, seq: ack.seq, epoch: ack.epoch, recovered: ack.recovered });
      });
    } catch (error) {
      this.gw.leaveTopic(this, topic);
      throw error;
    }
  }

  /** The hub part of a join; `onAck` runs right before replayed frames and live delivery. */
  private async follow(topic: string, since: Position | undefined, onAck: (ack: Ack) => void): Promise<void> {
    this.topics.add(topic);
    try {
      await this.gw.hub.subscribe(this, topic, since, onAck);
    } catch (error) {
      this.topics.delete(topic);
      throw error;
    }
  }

  private async authenticate(parsed: unknown): Promise<void> {
    this.gw.metrics.framesIn.inc({ type: isObject(parsed) && parsed.type === "auth" ? "auth" : "invalid" });
    if (!isObject(parsed) || parsed.type !== "auth") {
      this.gw.noteAuthFailure("protocol", { connectionId: this.id, ip: this.ip });
      this.close(Close.policy, "the first frame must be auth");
      return;
    }
    this.state = "authenticating";
    const token = typeof parsed.token === "string" ? parsed.token : "";
    let claims;
    try {
      claims = token.length > 0 && token.length <= 8192 ? await this.gw.verify("token", token) : null;
    } catch (error) {
      // The revocation check could not reach the broker: not the client's fault, try later.
      this.gw.log.warn("token check failed", { connectionId: this.id, ...errorFields(error) });
      this.close(Close.overloaded, "broker unavailable; try again later");
      return;
    }
    if ((this.state as State) === "closed") return;
    if (claims === null) {
      this.gw.noteAuthFailure("bad_token", { connectionId: this.id, ip: this.ip });
      this.close(Close.unauthorized, "invalid or expired token");
      return;
    }
    if (!this.gw.admitUser(this, claims.user.id)) {
      this.close(Close.overloaded, "too many connections for this user");
      return;
    }
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.user = claims.user;
    this.expiresAt = claims.exp;
    this.gw.authenticated(this, claims.user.id, claims.sid);
    await this.welcome();
  }

  /** Joins the personal inbox, then greets: a client that has `welcome` can receive DMs. */
  private async welcome(): Promise<void> {
    const user = this.user!;
    const inbox = inboxOf(user.id);
    try {
      await this.follow(inbox, undefined, () => {});
    } catch (error) {
      this.gw.log.warn("inbox join failed", { connectionId: this.id, ...errorFields(error) });
      this.close(Close.overloaded, "broker unavailable; try again later");
      return;
    }
    if ((this.state as State) === "closed") return;
    this.state = "open";
    this.sendJson({ type: "welcome", user, connectionId: this.id, instance: this.gw.config.instanceId, region: this.gw.config.region });
    this.gw.opened(this);
  }

  sendJson(frame: Record<string, unknown>): void {
    this.send(JSON.stringify(frame));
  }

  private sendError(ref: number | undefined, error: unknown): void {
    if (error instanceof SwitchboardError) {
      if (error.code === ErrorCode.internal) this.gw.log.error("frame failed", { connectionId: this.id, ...errorFields(error.cause ?? error) });
      this.sendJson({ type: "error", ref, code: error.code, message: error.message });
      return;
    }
    this.gw.log.error("frame failed", { connectionId: this.id, ...errorFields(error) });
    this.sendJson({ type: "error", ref, code: ErrorCode.internal, message: "internal error" });
  }
}

/** Rate-limited frames up to this size are parsed for their `ref`; larger ones are not. */
const REF_PARSE_MAX = 1024;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The client's correlation number, when the frame has a usable one. */
function refOf(parsed: unknown): number | undefined {
  if (!isObject(parsed)) return undefined;
  const ref = parsed.ref;
  return typeof ref === "number" && Number.isSafeInteger(ref) && ref >= 0 ? ref : undefined;
}

/** One short sentence from a zod error; a wrong or missing `type` is "unknown frame type". */
function describe(error: ZodError): string {
  const issue = error.issues[0];
  const path = issue?.path.map(String).join(".");
  if (issue !== undefined && (issue.code === "invalid_union" || (path === "type" && issue.code !== "invalid_type"))) {
    return "unknown frame type";
  }
  return describeZod(error, "invalid frame");
}
