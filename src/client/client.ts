/**
 * SwitchboardClient: one logical connection that survives any number of sockets.
 *
 * The socket is disposable; the client's state is not. It keeps, across reconnects:
 * - every Subscription with its last delivered `{seq, epoch}`, resubscribed with `since` on each
 *   new connection, so nothing is missed or delivered twice (topics.ts);
 * - every unacknowledged publish with its idempotency `key`, resent after a reconnect, so a
 *   publish whose ack was lost is not published twice and one issued offline is sent later
 *   (requests.ts; the request-shaped calls themselves are calls.ts).
 * A socket (link.ts) is replaced when the server closes it (policy per close code: the table in
 * protocol/codes.ts, turned into delays by backoff.ts), when a ping goes unanswered (a silently
 * dead link), or when the browser goes offline. A token nearing its expiry is refreshed on the
 * same socket (refresh.ts).
 */
import { Close } from "../protocol/codes.ts";
import type { Position, PresenceMember, ServerFrame } from "../protocol/frames.ts";
import { decideReconnect, type StopReason } from "./backoff.ts";
import { closedError, endedError, requestPresence, requestPublish, requestRefresh, requestUnsubscribe } from "./calls.ts";
import { Emitter } from "./emitter.ts";
import { SwitchboardClientError } from "./errors.ts";
import type { ClientEvents, ClientState, Emit, PublishResult, Welcome } from "./events.ts";
import { Link } from "./link.ts";
import { resolveOptions, type ClientOptions, type ResolvedOptions } from "./options.ts";
import { TokenRefresh } from "./refresh.ts";
import { Requests, topicOf, type Outgoing, type Request } from "./requests.ts";
import type { Message, Subscription, SubscriptionHandlers } from "./subscription.ts";
import { Topics } from "./topics.ts";
import { NetworkWatch, randomKey } from "./util.ts";

export class SwitchboardClient extends Emitter<ClientEvents> {
  readonly #o: ResolvedOptions;
  #state: ClientState = "idle";
  /** Consecutive attempts that did not lead to a connection lasting `reconnect.stableMs`. */
  #attempt = 0;
  /** The last close was a 4001: the next token is asked for with reason `unauthorized`, and a second refusal stops. */
  #refused = false;
  #welcome: Welcome | null = null;
  #nextRef = 1;
  #stableTimer: ReturnType<typeof setTimeout> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #link: Link;
  readonly #requests: Requests;
  readonly #topics: Topics;
  readonly #refresh: TokenRefresh;
  readonly #network: NetworkWatch;

  constructor(options: ClientOptions) {
    super();
    this.#o = resolveOptions(options);
    const emit: Emit = (event, payload) => this.emit(event, payload);
    const request = this.#request.bind(this);
    this.#link = new Link(this.#o, {
      frame: (frame) => this.#onFrame(frame),
      lost: (code, reason) => this.#lost(code, reason),
      credentialsFailed: (error) => this.#credentialsFailed(error),
      nextRef: () => this.#nextRef++,
    });
    this.#requests = new Requests((frame) => this.#link.send(frame), this.#o.requestTimeoutMs, this.#o.maxQueuedRequests, this.#o.rateLimit);
    this.#topics = new Topics({
      emit,
      request,
      send: (frame) => this.#link.send(frame),
      drop: (reason) => this.#link.drop(reason),
      unsubscribe: (topic) => this.unsubscribe(topic),
      random: this.#o.random,
    });
    this.#refresh = new TokenRefresh(this.#o, { emit, request });
    this.#network = new NetworkWatch(this.#o.network, {
      // Back online: skip the pending backoff. Offline: the socket is (or soon will be) silently dead.
      online: () => this.#state === "reconnecting" && this.connect(),
      offline: () => (this.#state === "open" || this.#state === "connecting") && this.#link.drop("offline"),
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

  /** Topics with a live Subscription, the application's and the server's. */
  get topics(): string[] {
    return this.#topics.names;
  }

  /** Starts connecting (no-op when connecting or open; skips a pending backoff delay). */
  connect(): void {
    if (this.#state === "connecting" || this.#state === "open") return;
    clearTimeout(this.#reconnectTimer);
    this.#network.attach();
    if (this.#state !== "reconnecting") {
      // Called by the application (first time, or after a stop): it re-authenticated if it had to.
      this.#attempt = 0;
      this.#refused = false;
    }
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
    this.#lost(Close.normal, "client closed", true);
  }

  /**
   * Joins `topic`. Resolves with the Subscription on the server's ack; rejects with the server's
   * error code (`forbidden`, `bad_request`, `limit_exceeded`, …), `timeout`, `closed`, or `cancelled`.
   * `since`: resume from a position the application kept (e.g. across page loads). A topic the
   * server subscribed this client to is taken over at once: `handler` gets its messages from now on.
   */
  subscribe(topic: string, handler: ((message: Message) => void) | SubscriptionHandlers, options: { since?: Position } = {}): Promise<Subscription> {
    const handlers = typeof handler === "function" ? { onMessage: handler } : handler;
    return this.#topics.open(topic, handlers, options.since, this.#state === "closed" ? closedError(topic) : null, this.#state === "open");
  }

  /**
   * Leaves `topic`: its handlers stop at once. Resolves on the server's ack, or at once when not
   * connected (a new connection will not subscribe it).
   */
  async unsubscribe(topic: string): Promise<void> {
    const sub = this.#topics.remove(topic);
    if (!sub) return;
    // The application asked for this: a subscribe() it did not await (React StrictMode's
    // mount/unmount/mount) must not surface as an unhandled rejection. Awaiting it still sees `cancelled`.
    sub.ready.catch(() => {});
    sub.fail(new SwitchboardClientError("cancelled", `unsubscribed from ${topic} before its ack`, topic), false);
    if (this.#state !== "open") return;
    await requestUnsubscribe(this.#request.bind(this), topic);
  }

  /**
   * Publishes `data` on `topic`; resolves with its `seq` once the server acknowledged it (no `seq`
   * on an ephemeral topic). Issued while disconnected, it is queued and sent after reconnecting;
   * in flight when the connection drops, it is resent with the same `key`, so the server publishes
   * it once. The timeout (`requestTimeoutMs`) counts from each send, not while queued.
   */
  publish(topic: string, data: unknown, options: { key?: string } = {}): Promise<PublishResult> {
    return requestPublish(this.#request.bind(this), topic, data, options.key ?? randomKey());
  }

  /**
   * Replaces the open connection's credential with `token`, on the same socket (SPEC §4
   * `refresh`: same subscriptions, the token's capabilities from now on) — e.g. after the
   * application granted its user a new topic. Resolves with the new expiry (epoch seconds) on the
   * server's ack; rejects with the server's code (`unauthorized`, `bad_request` for a credential
   * that is not refreshed, like the built-in cookie session) or `closed` when not connected. The
   * next socket authenticates as before (getTicket, getToken, cookie): let those grant as much.
   */
  refreshWith(token: string): Promise<number | undefined> {
    if (this.#state !== "open") return Promise.reject(new SwitchboardClientError("closed", "not connected: the next connection authenticates afresh"));
    return requestRefresh(this.#request.bind(this), token);
  }

  /** Who is in `topic`, across every machine. */
  presence(topic: string): Promise<PresenceMember[]> {
    return requestPresence(this.#request.bind(this), topic);
  }

  // ------------------------------------------------------------------------------------------
  // Connection lifecycle

  #startAttempt(): void {
    this.#state = "connecting";
    void this.#attemptAsync(this.#link.begin());
  }

  async #attemptAsync(gen: number): Promise<void> {
    await null; // from the constructor: let the caller attach listeners first
    if (!this.#link.isCurrent(gen)) return;
    this.emit("connecting", { attempt: this.#attempt });
    if (!this.#link.isCurrent(gen)) return;
    await this.#link.connect(gen, { reason: this.#refused ? "unauthorized" : "connect" });
  }

  #credentialsFailed(error: SwitchboardClientError): void {
    const gen = this.#link.generation;
    this.emit("error", error);
    if (!this.#link.isCurrent(gen)) return; // a listener called close() or connect()
    if (error.code === "unauthorized") this.#lost(Close.unauthorized, error.message, false, true);
    else this.#lost(1006, "credentials unavailable");
  }

  /**
   * The current socket (or attempt) is over: tear it down, then reconnect or stop per policy.
   * `refusedByApp`: the credentials callback itself said `unauthorized` — nothing to re-fetch.
   */
  #lost(code: number, reason: string, byClient = false, refusedByApp = false): void {
    const opened = this.#link.opened;
    const canReauthenticate = this.#o.getToken !== undefined && !this.#refused && !refusedByApp;
    if (code === Close.unauthorized) this.#refused = true;
    if (code === Close.tooLarge && opened) {
      this.#requests.failLargestSent((topic) => new SwitchboardClientError("too_large", "the request is larger than the server accepts (close 1009)", topic));
    }
    this.#teardown(byClient ? Close.normal : undefined);
    const decision = decideReconnect({ code, opened, byClient, canReauthenticate }, this.#attempt, this.#o.reconnect, this.#o.random);
    if (!decision.reconnect) return this.#ended(code, reason, decision.stop);
    const gen = this.#link.generation;
    this.#state = "reconnecting";
    this.emit("closed", { code, reason, reconnect: true });
    if (!this.#link.isCurrent(gen) || this.#state !== "reconnecting") return; // a listener called close() or connect()
    this.#attempt++;
    this.emit("reconnecting", { delay: decision.delay, attempt: this.#attempt, code });
    if (!this.#link.isCurrent(gen) || this.#state !== "reconnecting") return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#startAttempt();
    }, decision.delay);
  }

  /** No reconnect: settle what waits, then tell the application why. */
  #ended(code: number, reason: string, stop: StopReason): void {
    this.#stop(endedError(code, reason, stop));
    const gen = this.#link.generation;
    this.emit("closed", { code, reason, reconnect: false });
    if (!this.#link.isCurrent(gen)) return; // a listener called connect()
    if (stop === "unauthorized") this.emit("unauthorized", { code, reason });
    else if (code === Close.serverDisconnect && stop === "never") this.emit("disconnected", { code, reason });
  }

  /** Forgets the current socket: timers, handlers, and what was in flight on it. */
  #teardown(closeCode?: number): void {
    this.#link.reset(closeCode);
    this.#welcome = null;
    clearTimeout(this.#stableTimer);
    this.#refresh.cancel();
    this.#requests.connectionLost();
    this.#topics.suspendAll();
  }

  /** Stops reconnecting and settles everything still waiting with `error`. */
  #stop(error: SwitchboardClientError): void {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#state = "closed";
    this.#network.detach();
    this.#requests.failAll(error);
    this.#topics.failUnacknowledged(error);
  }

  #onWelcome(frame: Extract<ServerFrame, { type: "welcome" }>): void {
    if (this.#state !== "connecting") return; // one welcome per socket
    const { type: _type, ...welcome } = frame;
    this.#welcome = welcome;
    this.#refused = false;
    this.#state = "open";
    this.#link.welcomed();
    // Only a connection that lasts counts as working: one closed at once keeps backing off.
    this.#stableTimer = setTimeout(() => (this.#attempt = 0), this.#o.reconnect.stableMs);
    // Subscriptions first, then what was queued, in the order it was issued.
    this.#topics.resubscribeAll();
    this.#requests.flush();
    this.emit("open", welcome);
  }

  // ------------------------------------------------------------------------------------------
  // Frames

  #onFrame(frame: ServerFrame): void {
    if (this.#topics.receive(frame)) return;
    switch (frame.type) {
      case "welcome":
        return this.#onWelcome(frame);
      case "pong":
        return this.#link.pong(frame.ref);
      case "expiring":
        if (this.#state === "open" && typeof frame.expiresAt === "number") this.#refresh.expiring(frame.expiresAt);
        return;
      case "ack":
      case "presence":
      case "error":
        if (!this.#requests.settle(frame) && frame.type === "error") {
          this.emit("error", new SwitchboardClientError(frame.code as never, frame.message));
        }
        return;
    }
  }

  #request(frame: Outgoing, onLost: Request["onLost"], ok: Request["ok"], fail: Request["fail"]): void {
    if (this.#state === "closed") return fail(closedError(topicOf(frame)));
    this.#requests.add(this.#nextRef++, frame, onLost, ok, fail, this.#state === "open");
  }
}
