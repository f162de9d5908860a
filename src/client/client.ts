/**
 * SwitchboardClient: one logical connection that survives any number of sockets.
 *
 * The socket is disposable; the client's state is not. It keeps, across reconnects:
 * - every Subscription with its last delivered `{seq, epoch}`, resubscribed with `since` on each
 *   new connection, so nothing is missed or delivered twice;
 * - every unacknowledged publish with its idempotency `key`, resent after a reconnect, so a
 *   publish whose ack was lost is not published twice and one issued offline is sent later.
 * A socket is replaced when the server closes it (policy per close code in backoff.ts), when a
 * ping goes unanswered (a silently dead link), or when the browser goes offline.
 */
import type { ClientFrame, Position, PresenceMember, ServerFrame } from "../protocol/frames.ts";
import { decideReconnect } from "./backoff.ts";
import { Emitter } from "./emitter.ts";
import { SwitchboardClientError } from "./errors.ts";
import { resolveOptions, type ClientOptions, type ResolvedOptions } from "./options.ts";
import { Requests, topicOf, type Outgoing, type Request } from "./requests.ts";
import { describe, detach, NetworkWatch, randomKey, stringOrUndefined, withTicket } from "./util.ts";
import { Subscription, type Message, type PresenceEvent, type ResyncInfo, type SubscriptionHandlers } from "./subscription.ts";

export type Welcome = Omit<Extract<ServerFrame, { type: "welcome" }>, "type">;

/**
 * - `idle`: created with autoConnect false, connect() not called yet (requests queue);
 * - `connecting`: an attempt is under way (credentials, upgrade, auth, welcome);
 * - `open`: welcomed; requests flow;
 * - `reconnecting`: waiting out a backoff delay before the next attempt (requests queue);
 * - `closed`: stopped by close(), by 4001 or by a fatal close code; connect() starts again.
 */
export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface ClientEvents {
  /** An attempt starts; `attempt` counts consecutive failures before it (0 after a working connection). */
  connecting: { attempt: number };
  /** Welcomed: subscriptions have been re-sent with `since` and queued requests flushed. */
  open: Welcome;
  /** A socket ended (or an attempt failed); `reconnect` says whether another attempt follows. */
  closed: { code: number; reason: string; reconnect: boolean };
  /** The next attempt starts in `delay` ms. */
  reconnecting: { delay: number; attempt: number; code: number };
  /** The server closed with 4001 (or a credentials callback said so): re-authenticate, then connect(). */
  unauthorized: { code: number; reason: string };
  /** A topic lost continuity (also given to the subscription's onResync). */
  resync: ResyncInfo;
  /** A message on a topic without a Subscription (e.g. the personal inbox joined at welcome). */
  message: Message;
  presence: PresenceEvent;
  /** An `error` frame without a request, a failed credentials callback, a refused resubscription. */
  error: SwitchboardClientError;
}

export interface PublishResult {
  topic: string;
  seq: number;
  /** The topic's epoch, when the server's ack carries it. */
  epoch: string | undefined;
  /** The idempotency key sent with the publication. */
  key: string;
}

export class SwitchboardClient extends Emitter<ClientEvents> {
  readonly #o: ResolvedOptions;
  #state: ClientState = "idle";
  #ws: WebSocket | null = null;
  /** Bumped whenever the current socket or attempt is abandoned; stale callbacks compare it. */
  #gen = 0;
  #opened = false;
  #attempt = 0;
  #welcome: Welcome | null = null;
  #nextRef = 1;
  readonly #requests: Requests;
  readonly #subs = new Map<string, Subscription>();
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;
  #pingRef: number | null = null;
  readonly #network: NetworkWatch;

  constructor(options: ClientOptions) {
    super();
    this.#o = resolveOptions(options);
    this.#requests = new Requests((frame) => this.#send(frame), this.#o.requestTimeoutMs, this.#o.maxQueuedRequests);
    this.#network = new NetworkWatch(this.#o.network, {
      // Back online: skip the pending backoff. Offline: the socket is (or soon will be) silently dead.
      online: () => this.#state === "reconnecting" && this.connect(),
      offline: () => (this.#state === "open" || this.#state === "connecting") && this.#drop("offline"),
    });
    if (this.#o.autoConnect) this.connect();
  }

  get state(): ClientState {
    return this.#state;
  }

  /** The `welcome` of the current connection, null when not open. */
  get welcome(): Welcome | null {
    return this.#welcome;
  }

  /** Topics with a live Subscription. */
  get topics(): string[] {
    return [...this.#subs.keys()];
  }

  /** Starts connecting (no-op when connecting or open; skips a pending backoff delay). */
  connect(): void {
    if (this.#state === "connecting" || this.#state === "open") return;
    clearTimeout(this.#reconnectTimer);
    this.#network.attach();
    if (this.#state !== "reconnecting") this.#attempt = 0;
    this.#startAttempt();
  }

  /**
   * Stops for good: closes the socket with 1000, stops reconnecting, rejects every pending request
   * with `closed`. Acknowledged subscriptions stay registered and resume (with `since`) on connect().
   */
  close(): void {
    if (this.#state === "closed" || this.#state === "idle") {
      this.#stop(new SwitchboardClientError("closed", "the client was closed"));
      return;
    }
    this.#lost(1000, "client closed", true);
  }

  /**
   * Joins `topic`. Resolves with the Subscription on the server's ack; rejects with the server's
   * error code (`forbidden`, `bad_request`, …), `timeout`, `closed`, or `cancelled`.
   * `since`: resume from a position the application kept (e.g. across page loads).
   */
  subscribe(
    topic: string,
    handler: ((message: Message) => void) | SubscriptionHandlers,
    options: { since?: Position } = {},
  ): Promise<Subscription> {
    if (this.#subs.has(topic)) {
      return Promise.reject(new SwitchboardClientError("bad_request", `already subscribed to ${topic}: use that Subscription, or unsubscribe first`, topic));
    }
    if (this.#state === "closed") return Promise.reject(this.#closedError(topic));
    const handlers = typeof handler === "function" ? { onMessage: handler } : handler;
    const sub = new Subscription(topic, handlers, { unsubscribe: (t) => this.unsubscribe(t), resync: (i) => this.emit("resync", i) }, options.since);
    this.#subs.set(topic, sub);
    if (this.#state === "open") this.#sendSubscribe(sub);
    return sub.ready;
  }

  /**
   * Leaves `topic`: its handlers stop at once. Resolves on the server's ack, or at once when not
   * connected (a new connection will not subscribe it).
   */
  async unsubscribe(topic: string): Promise<void> {
    const sub = this.#subs.get(topic);
    if (!sub) return;
    this.#subs.delete(topic);
    sub.fail(new SwitchboardClientError("cancelled", `unsubscribed from ${topic} before its ack`, topic), false);
    if (this.#state !== "open") return;
    await new Promise<void>((resolve, reject) =>
      this.#request({ type: "unsubscribe", topic }, "fail", () => resolve(), (e) => (e.code === "closed" ? resolve() : reject(e))),
    );
  }

  /**
   * Publishes `data` on `topic`; resolves with its `seq` once the server acknowledged it. Issued
   * while disconnected, it is queued and sent after reconnecting; in flight when the connection
   * drops, it is resent with the same `key`, so the server publishes it once. The timeout
   * (`requestTimeoutMs`) counts from each send, not while queued.
   */
  publish(topic: string, data: unknown, options: { key?: string } = {}): Promise<PublishResult> {
    const key = options.key ?? randomKey();
    return new Promise((resolve, reject) =>
      this.#request(
        { type: "publish", topic, data, key },
        "resend",
        (ack) => resolve({ topic, seq: Number((ack as { seq?: unknown }).seq), epoch: stringOrUndefined((ack as { epoch?: unknown }).epoch), key }),
        reject,
      ),
    );
  }

  /** Who is in `topic`, across every machine. */
  presence(topic: string): Promise<PresenceMember[]> {
    return new Promise((resolve, reject) =>
      this.#request({ type: "presence", topic }, "resend", (reply) => resolve(reply.type === "presence" ? reply.members : []), reject),
    );
  }

  // ------------------------------------------------------------------------------------------
  // Connection lifecycle

  #startAttempt(): void {
    const gen = ++this.#gen;
    this.#state = "connecting";
    void this.#attemptAsync(gen);
  }

  async #attemptAsync(gen: number): Promise<void> {
    await null; // from the constructor: let the caller attach listeners first
    if (gen !== this.#gen) return;
    this.emit("connecting", { attempt: this.#attempt });
    if (gen !== this.#gen) return;
    let url = this.#o.url;
    let token: string | undefined;
    try {
      if (this.#o.getTicket) url = withTicket(url, await this.#o.getTicket());
      if (this.#o.getToken) token = await this.#o.getToken();
    } catch (e) {
      if (gen !== this.#gen) return;
      const error = e instanceof SwitchboardClientError ? e : new SwitchboardClientError("unavailable", `could not get credentials: ${describe(e)}`);
      this.emit("error", error);
      if (gen !== this.#gen) return;
      if (error.code === "unauthorized") this.#lost(4001, error.message, false);
      else this.#lost(1006, "credentials unavailable", false);
      return;
    }
    if (gen !== this.#gen) return;
    let ws: WebSocket;
    try {
      ws = this.#o.createWebSocket(url);
    } catch (e) {
      this.#lost(1006, `could not open the socket: ${describe(e)}`, false);
      return;
    }
    this.#ws = ws;
    this.#opened = false;
    this.#connectTimer = setTimeout(() => this.#drop("connect timeout"), this.#o.connectTimeoutMs);
    ws.onopen = () => {
      if (gen !== this.#gen) return;
      this.#opened = true;
      if (token !== undefined) this.#send({ type: "auth", token });
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (gen === this.#gen) this.#onData(ev.data);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (gen === this.#gen) this.#lost(ev.code, ev.reason, false);
    };
    ws.onerror = () => {}; // a close event always follows
  }

  /** The link is judged dead from this side: abandon the socket without waiting for a close handshake. */
  #drop(reason: string): void {
    const ws = this.#ws;
    if (ws) {
      detach(ws);
      try {
        ws.close(4000, reason);
      } catch {}
    }
    this.#lost(1006, reason, false);
  }

  /** The current socket (or attempt) is over: tear it down, then reconnect or stop per policy. */
  #lost(code: number, reason: string, byClient: boolean): void {
    const opened = this.#opened;
    this.#teardown(byClient ? 1000 : undefined);
    const decision = decideReconnect({ code, opened, byClient }, this.#attempt, this.#o.reconnect, this.#o.random);
    const gen = this.#gen;
    if (!decision.reconnect) {
      this.#stop(
        decision.unauthorized
          ? new SwitchboardClientError("unauthorized", `the server refused the credentials (${code} ${reason})`)
          : new SwitchboardClientError("closed", `the connection closed with ${code} ${reason}`.trim()),
      );
      this.emit("closed", { code, reason, reconnect: false });
      if (decision.unauthorized && gen === this.#gen) this.emit("unauthorized", { code, reason });
      return;
    }
    this.#state = "reconnecting";
    this.emit("closed", { code, reason, reconnect: true });
    if (gen !== this.#gen || this.#state !== "reconnecting") return; // a listener called close() or connect()
    this.#attempt++;
    this.emit("reconnecting", { delay: decision.delay, attempt: this.#attempt, code });
    if (gen !== this.#gen || this.#state !== "reconnecting") return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#startAttempt();
    }, decision.delay);
  }

  /** Forgets the current socket: timers, handlers, and what was in flight on it. */
  #teardown(closeCode?: number): void {
    this.#gen++;
    const ws = this.#ws;
    this.#ws = null;
    this.#opened = false;
    this.#welcome = null;
    if (ws) {
      detach(ws);
      if (closeCode !== undefined) {
        try {
          ws.close(closeCode, "client closed");
        } catch {}
      }
    }
    clearTimeout(this.#connectTimer);
    clearInterval(this.#pingTimer);
    clearTimeout(this.#pongTimer);
    this.#pingRef = null;
    this.#requests.connectionLost();
    for (const sub of this.#subs.values()) sub.suspend();
  }

  /** Stops reconnecting and settles everything still waiting with `error`. */
  #stop(error: SwitchboardClientError): void {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#state = "closed";
    this.#network.detach();
    this.#requests.failAll(error);
    for (const [topic, sub] of [...this.#subs]) {
      if (sub.acknowledged) continue;
      this.#subs.delete(topic);
      sub.fail(error, false);
    }
  }

  #onWelcome(frame: Extract<ServerFrame, { type: "welcome" }>): void {
    if (this.#state !== "connecting") return; // one welcome per socket
    clearTimeout(this.#connectTimer);
    const { type: _type, ...welcome } = frame;
    this.#welcome = welcome;
    this.#attempt = 0;
    this.#state = "open";
    this.#pingTimer = setInterval(() => this.#ping(), this.#o.pingIntervalMs);
    // Subscriptions first, then what was queued, in the order it was issued.
    for (const sub of this.#subs.values()) this.#sendSubscribe(sub);
    this.#requests.flush();
    this.emit("open", welcome);
  }

  #ping(): void {
    if (this.#state !== "open" || this.#pingRef !== null) return;
    this.#pingRef = this.#nextRef++;
    this.#send({ type: "ping", ref: this.#pingRef });
    this.#pongTimer = setTimeout(() => this.#drop("ping timeout"), this.#o.pingTimeoutMs);
  }

  // ------------------------------------------------------------------------------------------
  // Frames

  #onData(data: unknown): void {
    if (typeof data !== "string") return;
    let frame: ServerFrame;
    try {
      frame = JSON.parse(data) as ServerFrame;
    } catch {
      return;
    }
    if (frame === null || typeof frame !== "object" || typeof frame.type !== "string") return;
    switch (frame.type) {
      case "welcome":
        return this.#onWelcome(frame);
      case "message": {
        const sub = this.#subs.get(frame.topic);
        if (!sub) {
          const { type: _type, ...message } = frame;
          return this.emit("message", message);
        }
        if (sub.receive(frame) === "gap") this.#repair(sub);
        return;
      }
      case "resync": {
        const sub = this.#subs.get(frame.topic);
        if (sub) sub.receiveResync(frame);
        else this.emit("resync", { topic: frame.topic, reason: "resync", seq: frame.seq, epoch: frame.epoch });
        return;
      }
      case "presence.join":
      case "presence.leave": {
        const event: PresenceEvent = { topic: frame.topic, type: frame.type === "presence.join" ? "join" : "leave", user: frame.user };
        this.#subs.get(frame.topic)?.receivePresence(event);
        return this.emit("presence", event);
      }
      case "pong":
        if (frame.ref !== undefined && frame.ref === this.#pingRef) {
          clearTimeout(this.#pongTimer);
          this.#pingRef = null;
        }
        return;
      case "ack":
      case "presence":
      case "error": {
        if (!this.#requests.settle(frame) && frame.type === "error") {
          this.emit("error", new SwitchboardClientError(frame.code as never, frame.message));
        }
        return;
      }
    }
  }

  #request(frame: Outgoing, onLost: Request["onLost"], ok: Request["ok"], fail: Request["fail"]): void {
    if (this.#state === "closed") return fail(this.#closedError(topicOf(frame)));
    this.#requests.add(this.#nextRef++, frame, onLost, ok, fail, this.#state === "open");
  }

  #send(frame: ClientFrame): void {
    try {
      this.#ws?.send(JSON.stringify(frame));
    } catch {
      // The socket is closing; its close event requeues what was in flight.
    }
  }

  #sendSubscribe(sub: Subscription): void {
    const since = sub.beginSubscribe();
    const frame = since ? { type: "subscribe" as const, topic: sub.topic, since } : { type: "subscribe" as const, topic: sub.topic };
    this.#request(
      frame,
      "forget",
      (ack) => {
        if (this.#subs.get(sub.topic) === sub) sub.acknowledge(ack as Record<string, unknown>, since);
      },
      (error) => {
        if (this.#subs.get(sub.topic) !== sub) return;
        // A resubscription without a reply: the link is bad, a new one resubscribes everything.
        if (error.code === "timeout" && sub.acknowledged) return this.#drop("subscribe timeout");
        this.#subs.delete(sub.topic);
        if (error.code === "timeout") this.#send({ type: "unsubscribe", topic: sub.topic });
        if (sub.acknowledged) this.emit("error", error);
        sub.fail(error, true);
      },
    );
  }

  /** A gap in `seq`: leave and rejoin with `since` the last delivered position; the replay fills it. */
  #repair(sub: Subscription): void {
    this.#send({ type: "unsubscribe", topic: sub.topic });
    this.#sendSubscribe(sub);
  }

  #closedError(topic?: string): SwitchboardClientError {
    return new SwitchboardClientError("closed", "the client is closed: call connect() first", topic);
  }

}
