/**
 * One socket's life: authentication state, a queue that handles its frames strictly in arrival
 * order (Bun runs async `message` handlers concurrently), the flood rules, and the frame
 * handlers. Everything it does to other sockets goes through its ConnectionHost
 * (connection-host.ts), which the gateway implements.
 */
import type { ServerWebSocket } from "bun";
import { ClientFrame, type Position, type User } from "../protocol/frames.ts";
import { Close, ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { inboxOf, isValidTopic, TOPIC_RULE } from "../protocol/topics.ts";
import type { Namespace } from "../auth/namespaces.ts";
import type { Identity, Via } from "../auth/credentials.ts";
import type { Ack } from "./hub.ts";
import { presenceChannel, type ConnectionHost, type ConnectionInit, type Socket } from "./connection-host.ts";
import { FloodGuard } from "./rate.ts";
import { checkFirstMessage } from "./first-message.ts";
import { errorFields } from "../log.ts";
import { parseJson, whyNotJson } from "../protocol/parse.ts";
import { describeFrameError, errorFrame, refOf } from "./frame-input.ts";
import { FrameQueue, type FrameQueueOptions } from "./frame-queue.ts";
import { CredentialTimers } from "./expiry.ts";
import { checkRefresh } from "./refresh.ts";
import type { Caps } from "../auth/caps.ts";
import { Pacer } from "./pacer.ts";
import { SocketSubscriptions } from "./budgets.ts";
import { SmallSet } from "./small-set.ts";
import { MEMBERS_PER_TOKEN, REPLAYED_PER_TOKEN, sizeCost } from "../budgets/cost.ts";

/** `ws.data` is the socket's Connection itself: no wrapper object per socket. */
export type SocketData = Connection;

type State = "awaiting-auth" | "authenticating" | "open" | "closed";

/** Publishes of one socket waiting for the broker before its queue waits for them too. */
const MAX_PUBLISHES_IN_FLIGHT = 64;
/** A replay waits this long for a peer to read before the socket is a slow consumer. */
const REPLAY_STALL_MS = 5000;
/** Rate-limited frames up to this size are parsed for their `ref`; larger ones are not. */
const REF_PARSE_MAX = 1024;

/**
 * Idle memory (bench/README.md): an idle socket holds this object, its frame queue, its flood
 * guard, its subscription count and two small topic sets. The pacer and the credential timers are
 * made when first needed, the queue calls the connection itself (FrameQueueOptions), and nothing
 * here keeps a closure or a timer for an idle cookie socket.
 */
export class Connection implements Socket, FrameQueueOptions {
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
  private readonly slots: SocketSubscriptions;
  readonly openedAt = Date.now();
  readonly retireAt: number | null;
  private state: State;
  private readonly queue = new FrameQueue(this);
  private publishesInFlight = 0;
  private readonly shedRetryMs: number | null;
  private readonly flood: FloodGuard;
  private authTimer: ReturnType<typeof setTimeout> | null = null;
  /** Made by the first paced replay. */
  private pacer: Pacer | null = null;
  private killTimer: ReturnType<typeof setTimeout> | null = null;
  /** `expiring`, then 4001 at the credential's expiry (SPEC §4); never for built-in cookie sessions. Made when first set. */
  private expiry: CredentialTimers | null = null;

  constructor(
    private readonly host: ConnectionHost,
    init: ConnectionInit,
  ) {
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
    this.flood = new FloodGuard(host.config.rateLimitPerS, host.config.rateLimitBurst, this.openedAt);
    this.retireAt = init.retireAt;
    this.slots = new SocketSubscriptions(host.config.maxSubscriptionsPerSocket, host.subscriptions);
    this.shedRetryMs = init.shedRetryMs ?? null;
  }

  get isOpen(): boolean {
    return this.state === "open";
  }

  bufferedAmount(): number {
    return this.ws?.getBufferedAmount() ?? 0;
  }

  // ── Bun events ────────────────────────────────────────────────────────────

  opened(ws: ServerWebSocket<SocketData>): void {
    this.ws = ws;
    if (this.state === "closed") {
      ws.close(Close.restarting, "server restarting");
      return;
    }
    if (this.shedRetryMs !== null) {
      this.close(Close.overloaded, `overloaded; retry in ${this.shedRetryMs} ms`);
      return;
    }
    if (this.user !== null) {
      this.queue.push(() => this.welcome());
      return;
    }
    this.authTimer = setTimeout(() => {
      this.authTimer = null;
      if (this.state === "awaiting-auth" || (this.state === "authenticating" && this.user === null)) {
        this.host.noteAuthFailure("timeout", { connectionId: this.id, ip: this.ip });
        this.close(Close.authTimeout, "authentication timeout");
      }
    }, this.host.config.authTimeoutMs);
  }

  received(message: string | Buffer): void {
    if (this.state === "closed") return;
    if (typeof message !== "string") {
      this.close(Close.unsupportedData, "binary frames are not part of the protocol");
      return;
    }
    const verdict = this.flood.check(Date.now());
    if (verdict === "close") return this.close(Close.rateLimited, "rate limited");
    if (verdict === "refuse") {
      this.host.metrics.rateLimited.inc();
      // A refused frame is not worth parsing in full: only a small one gets its ref echoed.
      const ref = message.length <= REF_PARSE_MAX ? refOf(parseJson(message)) : undefined;
      this.sendError(ref, new SwitchboardError(ErrorCode.rateLimited, "too many frames; slow down"));
      return;
    }
    this.queue.push(message);
  }

  /** Bun `close`: the socket is gone. Frees everything it held; idempotent. */
  closed(): void {
    if (this.state === "closed" && this.ws === null) return;
    this.state = "closed";
    this.queue.clear();
    this.pacer?.close();
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    if (this.killTimer !== null) clearTimeout(this.killTimer);
    this.authTimer = this.killTimer = null;
    this.expiry?.clear();
    this.ws = null;
    this.host.forget(this);
    for (const topic of this.topics) this.host.leave(this, topic);
    this.topics.clear();
    if (this.user !== null) this.slots.clear(this.user.id);
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
    this.pacer ??= new Pacer({
      bufferedAmount: () => this.bufferedAmount(),
      send: (frame) => this.send(frame),
      live: () => this.ws !== null && this.state !== "closed",
    });
    const outcome = await this.pacer.send(frames, this.host.config.backpressureLimitBytes / 2, REPLAY_STALL_MS);
    if (outcome === "stalled") this.closeSlow();
    return outcome === "sent";
  }

  /** Bun `drain`. */
  onDrain(): void {
    this.pacer?.onDrain();
  }

  receives(topic: string): boolean {
    return this.ws !== null && this.state !== "closed" && this.ws.isSubscribed(topic);
  }

  subscribeLocal(topic: string): void {
    if (this.ws === null || this.state === "closed") return;
    this.ws.subscribe(topic);
    this.followPresence(topic);
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
    this.queue.clear();
    this.expiry?.clear();
    if (ws === null) return; // not open yet: `opened` closes it
    this.host.metrics.closesSent.inc({ code: String(code) });
    ws.close(code, reason);
    // A peer that never reads cannot take the close frame: cut it after a grace period.
    this.killTimer = setTimeout(() => ws.terminate(), 2000);
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

  // ── Frames ───────────────────────────────────────────────────────────────

  // ── The frame queue's calls (FrameQueueOptions) ───────────────────────────

  pausable(): ServerWebSocket<SocketData> | null {
    return this.ws;
  }

  queueLive(): boolean {
    return this.state !== "closed";
  }

  queueFailed(error: unknown): void {
    this.host.log.error("connection failed", { connectionId: this.id, ...errorFields(error) });
    this.close(Close.internal, "internal error");
  }

  async handleFrame(raw: string): Promise<void> {
    const parsed = parseJson(raw);
    if (this.state === "awaiting-auth") return this.authenticate(parsed);
    const ref = refOf(parsed);
    const result = parsed === undefined ? null : ClientFrame.safeParse(parsed);
    if (result === null || !result.success) {
      this.host.metrics.framesIn.inc({ type: "invalid" });
      const why = result === null ? whyNotJson(raw, "frame") : describeFrameError(result.error);
      return this.sendError(ref, new SwitchboardError(ErrorCode.badRequest, why));
    }
    this.host.metrics.framesIn.inc({ type: result.data.type });
    try {
      await this.dispatch(result.data);
    } catch (error) {
      this.sendError(ref, error);
    }
  }

  /** Every check goes to the host's one decision point (auth/permissions.ts). */
  private async dispatch(frame: ClientFrame): Promise<void> {
    switch (frame.type) {
      case "auth":
        throw new SwitchboardError(ErrorCode.badRequest, "already authenticated");
      case "refresh": {
        const verdict = await checkRefresh(this.host, this, frame.token);
        if ("close" in verdict) return this.close(verdict.close, verdict.reason);
        if (this.state !== "open") return;
        this.renew(verdict.identity);
        this.sendJson({ type: "ack", ref: frame.ref, expiresAt: verdict.identity.exp });
        return;
      }
      case "ping":
        this.sendJson({ type: "pong", ref: frame.ref });
        return;
      case "subscribe": {
        const { topic, since, ref } = frame;
        const ns = await this.host.authorize(this, "subscribe", topic);
        if (since !== undefined) await this.host.authorize(this, "history", topic);
        // The socket may have closed while the app was asked: its topics were already left, so
        // joining now would list a ghost member and hold a subscription slot for good.
        if (this.state === "closed") return;
        this.slots.count(topic, this.user!.id);
        await this.join(topic, since, ns, (ack) => {
          if (ns.delivery === "ephemeral") return this.sendJson({ type: "ack", ref, topic, recovered: false });
          if (since !== undefined) this.host.metrics.recoveries.inc({ recovered: String(ack.recovered) });
          // A replay costs by its size (SPEC §8): one token per 10 messages; the frame paid one.
          if (since !== undefined) this.flood.charge(sizeCost(ack.replayed, REPLAYED_PER_TOKEN) - 1, Date.now());
          this.sendJson({ type: "ack", ref, topic, seq: ack.seq, epoch: ack.epoch, recovered: ack.recovered });
        });
        return;
      }
      case "unsubscribe": {
        if (!isValidTopic(frame.topic)) throw new SwitchboardError(ErrorCode.badRequest, TOPIC_RULE);
        if (this.topics.delete(frame.topic)) this.host.leave(this, frame.topic);
        this.slots.uncount(frame.topic, this.user!.id);
        this.sendJson({ type: "ack", ref: frame.ref, topic: frame.topic });
        return;
      }
      case "publish": {
        await this.host.authorize(this, "publish", frame.topic);
        // Publishes are pipelined: each is handed to the broker in arrival order (one ordering
        // point per topic, one FIFO connection), and the queue moves on without waiting for the
        // round trip. Acks come back in the same order. At most MAX_PUBLISHES_IN_FLIGHT wait.
        const { ref, topic } = frame;
        this.publishesInFlight += 1;
        const acked = this.host.publish(topic, { from: this.user!.id, data: frame.data, ts: Date.now(), key: frame.key }).then(
          // null: an ephemeral topic, which has no position (SPEC §5).
          (result) => this.sendJson(result === null ? { type: "ack", ref, topic } : { type: "ack", ref, topic, seq: result.seq, epoch: result.epoch }),
          (error: unknown) => this.sendError(ref, error),
        );
        void acked.finally(() => (this.publishesInFlight -= 1));
        if (this.publishesInFlight >= MAX_PUBLISHES_IN_FLIGHT) await acked;
        return;
      }
      case "presence": {
        await this.host.authorize(this, "presence", frame.topic);
        const members = await this.host.members(frame.topic);
        this.flood.charge(sizeCost(members.length, MEMBERS_PER_TOKEN) - 1, Date.now());
        this.sendJson({ type: "presence", ref: frame.ref, topic: frame.topic, members });
        return;
      }
    }
  }

  /**
   * Subscribes to a topic and, where its namespace keeps presence, joins it. Presence is written
   * first, so once a client holds the `ack` it is listed everywhere. The joiner itself is not
   * subscribed yet when its own `presence.join` goes out; it learns the members from a `presence`
   * request.
   */
  private async join(topic: string, since: Position | undefined, ns: Namespace, onAck: (ack: Ack) => void): Promise<void> {
    this.topics.add(topic);
    if (ns.presence) await this.host.joinPresence(this, topic);
    if (this.state === "closed" || !this.topics.has(topic)) return;
    try {
      await this.follow(topic, since, onAck);
    } catch (error) {
      this.host.leave(this, topic);
      throw error;
    }
  }

  /**
   * `/api/subscribe` (SPEC §6): joins the topic as a client's subscribe would (presence included)
   * and sends `{type:"subscribed", topic, seq, epoch}`. No permission check: the server decided.
   * True when the socket is subscribed afterwards (already was, or now is); false when it closed
   * meanwhile or the broker was unreachable.
   */
  async serverSubscribe(topic: string, ns: Namespace): Promise<boolean> {
    if (!this.isOpen) return false;
    if (this.topics.has(topic)) return true;
    try {
      // An ephemeral topic has no position (SPEC §5): `subscribed` without seq and epoch.
      await this.join(topic, undefined, ns, (ack) =>
        this.sendJson(ns.delivery === "ephemeral" ? { type: "subscribed", topic } : { type: "subscribed", topic, seq: ack.seq, epoch: ack.epoch }),
      );
    } catch (error) {
      this.host.log.warn("server subscribe failed", { connectionId: this.id, topic, ...errorFields(error) });
      return false;
    }
    return this.isOpen && this.topics.has(topic);
  }

  /** `/api/unsubscribe`: leaves the topic and sends `{type:"unsubscribed", topic, reason:"server"}`. True when it was subscribed. */
  serverUnsubscribe(topic: string): boolean {
    if (!this.isOpen || !this.topics.delete(topic)) return false;
    this.host.leave(this, topic);
    this.slots.uncount(topic, this.user!.id);
    this.sendJson({ type: "unsubscribed", topic, reason: "server" });
    return true;
  }

  /** The hub part of a join; `onAck` runs right before replayed frames and live delivery. */
  private async follow(topic: string, since: Position | undefined, onAck: (ack: Ack) => void): Promise<void> {
    this.topics.add(topic);
    try {
      await this.host.follow(this, topic, since, onAck);
    } catch (error) {
      this.topics.delete(topic);
      this.slots.uncount(topic, this.user!.id);
      throw error;
    }
  }

  private async authenticate(parsed: unknown): Promise<void> {
    this.state = "authenticating";
    const result = await checkFirstMessage(this.host, parsed, { connectionId: this.id, ip: this.ip });
    if ((this.state as State) === "closed") return;
    if ("close" in result) return this.close(result.close, result.reason);
    if (!this.host.admit(this, result.identity)) return this.close(Close.overloaded, "too many connections for this user");
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.user = result.identity.user;
    this.expiresAt = result.identity.exp;
    this.issuedAt = result.identity.iat;
    this.caps = result.identity.caps;
    await this.welcome();
  }

  /**
   * Joins the personal inbox, then greets: a client that has `welcome` can receive DMs. When
   * this process already follows the inbox (another socket of the user), the join is immediate
   * and the welcome leaves in the same write as the 101 (Bun corks sends made inside `open`).
   * The inbox follows the permission rules too: a `user` namespace redefined so that the
   * credential may not subscribe to it without asking the app is not joined (SPEC §5).
   */
  private welcome(): Promise<void> {
    const inbox = inboxOf(this.user!.id);
    if (!this.host.joinsInbox(this, inbox)) {
      this.greet();
      return Promise.resolve();
    }
    if (this.host.followNow(this, inbox)) {
      this.topics.add(inbox);
      this.greet();
      return Promise.resolve();
    }
    return this.joinInboxThenGreet(inbox);
  }

  private async joinInboxThenGreet(inbox: string): Promise<void> {
    try {
      await this.follow(inbox, undefined, () => {});
    } catch (error) {
      this.host.log.warn("inbox join failed", { connectionId: this.id, ...errorFields(error) });
      this.close(Close.overloaded, "broker unavailable; try again later");
      return;
    }
    if ((this.state as State) === "closed") return;
    this.greet();
  }

  private greet(): void {
    const user = this.user!;
    this.state = "open";
    if (this.via !== "cookie") this.timers().set(this.issuedAt, this.expiresAt);
    this.sendJson({ type: "welcome", user, connectionId: this.id, instance: this.host.config.instanceId, region: this.host.config.region });
    this.host.opened(this);
  }

  /** Same socket, same subscriptions and presence: only the credential changes. */
  private renew(identity: Identity & { exp: number }): void {
    this.host.renewed(this, identity);
    this.expiresAt = identity.exp;
    this.issuedAt = identity.iat;
    this.caps = identity.caps;
    this.timers().set(identity.iat, identity.exp);
    // The new caps decide who reads join/leave frames from now on.
    for (const topic of this.topics) if (this.receives(topic)) this.followPresence(topic);
  }

  private timers(): CredentialTimers {
    return (this.expiry ??= new CredentialTimers(
      (expiresAt) => this.sendJson({ type: "expiring", expiresAt }),
      () => this.close(Close.unauthorized, "credential expired"),
    ));
  }

  sendJson(frame: Record<string, unknown>): void {
    this.send(JSON.stringify(frame));
  }

  private sendError(ref: number | undefined, error: unknown): void {
    this.sendJson(errorFrame(ref, error, (cause) => this.host.log.error("frame failed", { connectionId: this.id, ...errorFields(cause) })));
  }
}
