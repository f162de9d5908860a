/**
 * One socket's life: the Bun socket it writes to, a queue that handles its frames strictly in
 * arrival order (Bun runs async `message` handlers concurrently), the flood rules, and the
 * dispatch of each frame (frame-dispatch.ts) to the handler of its family: the session's
 * (first-message auth, welcome, refresh: socket-session.ts), topic frames (topic-frames.ts,
 * joining and leaving in socket-topics.ts), publishes (publish-frames.ts). Those are functions of this socket, which
 * holds all of its state. Everything it does to other sockets goes through its ConnectionHost
 * (connection-host.ts), which the gateway implements.
 */
import type { ServerWebSocket } from "bun";
import type { User } from "../protocol/frames.ts";
import { Close, ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import type { Namespace } from "../auth/namespaces.ts";
import type { Via } from "../auth/credentials.ts";
import { presenceChannel, type ConnectionHost, type ConnectionInit, type Socket } from "./connection-host.ts";
import { RejectionRun, TokenBucket } from "./rate.ts";
import { floodRate, WithRareFields } from "./connection-fields.ts";
import { errorFields } from "../log.ts";
import { parseJson } from "../protocol/parse.ts";
import { errorFrame, refOf } from "./frame-input.ts";
import { handleFrame, type FrameSocket } from "./frame-dispatch.ts";
import { FrameQueue, type FrameQueueOptions, type Job } from "./frame-queue.ts";
import type { Caps } from "../auth/caps.ts";
import { Pacer } from "./pacer.ts";
import { SocketSubscriptions } from "./budgets.ts";
import { SmallSet } from "./small-set.ts";
import { armAuthTimeout, welcome, welcomeNow, type SessionState } from "./socket-session.ts";
import { leaveAll, serverSubscribe, serverUnsubscribe } from "./socket-topics.ts";

/** `ws.data` is the socket's Connection itself: no wrapper object per socket. */
export type SocketData = Connection;

/** A replay waits this long for a peer to read before the socket is a slow consumer. */
const REPLAY_STALL_MS = 5000;
/** Rate-limited frames up to this size are parsed for their `ref`; larger ones are not. */
const REF_PARSE_MAX = 1024;

/**
 * Idle memory (bench/README.md): an idle socket holds this object, its flood guard, its
 * subscription count and two small topic sets. Its frame queue exists while frames wait, the rare
 * fields once one is set (connection-fields.ts), the queue calls the connection itself
 * (FrameQueueOptions), and nothing here keeps a closure or a timer for an idle cookie socket.
 * Adding a field: count them, `rare` included (at most 18 for the 160-byte cell).
 */
export class Connection extends WithRareFields implements Socket, FrameQueueOptions, FrameSocket {
  readonly id: string;
  readonly ip: string;
  readonly via: Via;
  userId: string | null;
  sid: string | null;
  /** Known at upgrade for cookie and ticket sockets; null until the first frame for token ones. */
  user: User | null;
  expiresAt: number | null;
  /** When the credential was issued (epoch seconds), when known: the start of its lifetime. */
  issuedAt: number | null;
  /** The credential's capabilities (SPEC §5); null: the namespaces' defaults. A refresh replaces them. */
  caps: Caps | null;
  ws: ServerWebSocket<SocketData> | null = null;
  /** Topics this socket is a hub member of (subscribed, or being subscribed). */
  readonly topics = new SmallSet();
  /** Its topics that count toward MAX_SUBSCRIPTIONS_PER_SOCKET / _PER_USER (budgets.ts). */
  readonly slots: SocketSubscriptions;
  readonly openedAt = Date.now();
  /** The session's state (socket-session.ts sets it, as does closing). */
  state: SessionState;
  /** Made by the first frame or job, dropped once it ran out (queueDrained). */
  private queue: FrameQueue | null = null;
  /** The flood rule's bucket (SPEC "Limits"); a run of refusals is a rare field. */
  private readonly flood: TokenBucket;

  constructor(
    readonly host: ConnectionHost,
    init: ConnectionInit,
  ) {
    super();
    const identity = init.identity;
    this.id = init.id;
    this.ip = init.ip;
    this.via = identity?.via ?? "token";
    this.user = identity?.user ?? null;
    this.userId = this.user?.id ?? null;
    this.sid = identity?.sid ?? null;
    this.expiresAt = identity?.exp ?? null;
    this.issuedAt = identity?.iat ?? null;
    this.caps = identity?.caps ?? null;
    this.state = identity === null ? "awaiting-auth" : "authenticating";
    this.flood = new TokenBucket(floodRate(host.config), this.openedAt);
    this.slots = new SocketSubscriptions(host.subscriptions);
    if (init.retireAt !== null) this.rareFields().retireAt = init.retireAt;
    if (init.shedRetryMs !== undefined) this.rareFields().shedRetryMs = init.shedRetryMs;
  }

  get isOpen(): boolean {
    return this.state === "open";
  }

  /** False once the socket closed or was told to. */
  get live(): boolean {
    return this.state !== "closed";
  }

  bufferedAmount(): number {
    return this.ws?.getBufferedAmount() ?? 0;
  }

  chargeFlood(tokens: number): void {
    this.flood.charge(floodRate(this.host.config), tokens, Date.now());
  }

  // ── Bun events ────────────────────────────────────────────────────────────

  opened(ws: ServerWebSocket<SocketData>): void {
    this.ws = ws;
    if (this.state === "closed") {
      ws.close(Close.restarting, "server restarting");
      return;
    }
    const shedRetryMs = this.rareIfSet?.shedRetryMs ?? null;
    if (shedRetryMs !== null) return this.close(Close.overloaded, `overloaded; retry in ${shedRetryMs} ms`);
    if (this.user === null) armAuthTimeout(this);
    else if (!welcomeNow(this)) this.push(() => welcome(this));
  }

  received(message: string | Buffer): void {
    if (this.state === "closed") return;
    if (typeof message !== "string") return this.close(Close.unsupportedData, "binary frames are not part of the protocol");
    const now = Date.now();
    if (!this.flood.take(floodRate(this.host.config), now)) {
      if (this.refuseFlood(now)) return;
      // A refused frame is not worth parsing in full: only a small one gets its ref echoed.
      const ref = message.length <= REF_PARSE_MAX ? refOf(parseJson(message)) : undefined;
      this.sendError(ref, new SwitchboardError(ErrorCode.rateLimited, "too many frames; slow down"));
      return;
    }
    this.push(message);
  }

  /** Bun `ping`/`pong` (the engine sent the pong already): a token like a frame (SPEC §8); no `error` when refused. */
  controlReceived(): void {
    const now = Date.now();
    if (this.state !== "closed" && !this.flood.take(floodRate(this.host.config), now)) this.refuseFlood(now);
  }

  /** A frame over the rate: refused; refused for SUSTAINED_REJECTION_MS on end: closed with 4008 (rate.ts). True once closed. */
  private refuseFlood(now: number): boolean {
    const closing = (this.rareFields().floodRejections ??= new RejectionRun()).reject(now);
    if (closing) this.close(Close.rateLimited, "rate limited");
    else this.host.metrics.rateLimited.inc();
    return closing;
  }

  private push(item: string | Job): void {
    (this.queue ??= new FrameQueue(this)).push(item);
  }

  /** Bun `close`: the socket is gone. Frees everything it held; idempotent. */
  closed(): void {
    if (this.state === "closed" && this.ws === null) return;
    this.state = "closed";
    this.queue?.clear();
    this.rareIfSet?.release();
    this.ws = null;
    this.host.forget(this);
    leaveAll(this);
  }

  // ── Member (hub) ─────────────────────────────────────────────────────────

  /** Sends one frame; returns Bun's status (bytes sent, -1 queued under backpressure, 0 dropped or not sent). */
  send(frame: string): number {
    const ws = this.ws;
    if (ws === null || this.state === "closed") return 0;
    this.host.metrics.frameOut(frame);
    const status = ws.send(frame, false);
    if (status === 0) this.closeSlow();
    return status;
  }

  /** A replay, paced by the peer's reading (pacer.ts); a peer that stops reading is a slow consumer. */
  async sendPaced(frames: string[]): Promise<boolean> {
    const rare = this.rareFields();
    rare.pacer ??= new Pacer({
      bufferedAmount: () => this.bufferedAmount(),
      send: (frame) => this.send(frame),
      live: () => this.ws !== null && this.state !== "closed",
    });
    const outcome = await rare.pacer.send(frames, this.host.config.backpressureLimitBytes / 2, REPLAY_STALL_MS);
    if (outcome === "stalled") this.closeSlow();
    return outcome === "sent";
  }

  /** Bun `drain`. */
  onDrain(): void {
    this.rareIfSet?.pacer?.onDrain();
  }

  receives(topic: string): boolean {
    return this.ws !== null && this.state !== "closed" && this.ws.isSubscribed(topic);
  }

  subscribeLocal(topic: string): void {
    if (this.ws === null || this.state === "closed") return;
    this.ws.subscribe(topic);
    // Always afresh (a rejoin left both channels first): no presence channel to leave (the inbox's, per handshake).
    if (this.host.readsPresence(this, topic)) this.ws.subscribe(presenceChannel(topic));
  }

  unsubscribeLocal(topic: string): void {
    if (this.ws === null || this.state === "closed") return;
    this.ws.unsubscribe(topic);
    this.ws.unsubscribe(presenceChannel(topic));
  }

  /** Joins or leaves the topic's join/leave frames as the credential's `presence` action says (SPEC §5). */
  private followPresence(topic: string): void {
    if (this.ws === null || this.state === "closed") return;
    if (this.host.readsPresence(this, topic)) this.ws.subscribe(presenceChannel(topic));
    else this.ws.unsubscribe(presenceChannel(topic));
  }

  // ── Closing ──────────────────────────────────────────────────────────────

  /** Closes with a SPEC close code; the socket is forgotten when Bun reports it closed. */
  close(code: number, reason: string): void {
    const ws = this.ws;
    if (this.state === "closed") return;
    this.state = "closed";
    this.queue?.clear();
    this.expiry?.clear();
    if (ws === null) return; // not open yet: `opened` closes it
    this.host.metrics.closesSent.inc({ code: String(code) });
    ws.close(code, reason);
    // A peer that never reads cannot take the close frame: cut it after a grace period.
    this.rareFields().killTimer = setTimeout(() => ws.terminate(), 2000);
  }

  /** A socket whose unsent bytes passed the backpressure limit: never let it miss silently. */
  closeSlow(): void {
    const ws = this.ws;
    if (ws === null || this.state === "closed") return;
    for (const topic of this.topics) {
      ws.unsubscribe(topic);
      ws.unsubscribe(presenceChannel(topic));
    }
    this.host.metrics.slowConsumers.inc();
    this.close(Close.slowConsumer, "slow consumer");
  }

  // ── The frame queue's calls (FrameQueueOptions) ───────────────────────────

  pausable(): ServerWebSocket<SocketData> | null {
    return this.ws;
  }

  queueLive(): boolean {
    return this.state !== "closed";
  }

  queueDrained(queue: FrameQueue): void {
    if (this.queue === queue) this.queue = null;
  }

  queueFailed(error: unknown): void {
    this.host.log.error("connection failed", { connectionId: this.id, ...errorFields(error) });
    this.close(Close.internal, "internal error");
  }

  handleFrame(raw: string): Promise<void> {
    return handleFrame(this, raw);
  }

  /** `/api/subscribe` (socket-topics.ts). */
  serverSubscribe(topic: string, ns: Namespace): Promise<boolean> {
    return serverSubscribe(this, topic, ns);
  }

  /** `/api/unsubscribe` (socket-topics.ts). */
  serverUnsubscribe(topic: string): boolean {
    return serverUnsubscribe(this, topic);
  }

  /** The credential changed (a refresh): each topic's join/leave frames follow its `presence` action again. */
  rereadPresence(): void {
    for (const topic of this.topics) if (this.receives(topic)) this.followPresence(topic);
  }

  sendJson(frame: Record<string, unknown>): void {
    this.send(JSON.stringify(frame));
  }

  sendError(ref: number | undefined, error: unknown): void {
    this.sendJson(errorFrame(ref, error, (cause) => this.host.log.error("frame failed", { connectionId: this.id, ...errorFields(cause) })));
  }
}
