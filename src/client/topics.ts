/**
 * The client's subscriptions, whoever made them: the application (subscribe()) or the server
 * (a `subscribed` frame, SPEC §6). Each keeps its position across sockets: on every new connection
 * it is subscribed again with `since`, a gap is repaired by resubscribing, and topic frames
 * (`message`, `resync`, presence, `subscribed`, `unsubscribed`) are routed here.
 */
import type { ClientFrame, Position, ServerFrame } from "../protocol/frames.ts";
import { SwitchboardClientError } from "./errors.ts";
import type { Emit } from "./events.ts";
import type { Outgoing, Request } from "./requests.ts";
import { Subscription, type Message, type PresenceEvent, type ResyncInfo, type SubscriptionHandlers } from "./subscription.ts";
import { backoffCeiling } from "./backoff.ts";

/**
 * A resubscription the server refused for a while (`unavailable`: its Redis read missed the
 * deadline during a reconnect storm; `rate_limited`; `internal`) is sent again after a jittered,
 * growing delay on the same socket, keeping its position: the subscription does not end over a
 * temporary refusal (a socket that is fine would otherwise stay without its topic for good).
 */
const RESUBSCRIBE_RETRY = { baseMs: 500, capMs: 10_000 };

export interface TopicsHost {
  emit: Emit;
  request(frame: Outgoing, onLost: Request["onLost"], ok: Request["ok"], fail: Request["fail"]): void;
  send(frame: ClientFrame): void;
  /** Abandons the socket: a new one resubscribes everything. */
  drop(reason: string): void;
  unsubscribe(topic: string): Promise<void>;
  /** Random source in [0, 1) for the retry jitter. */
  random(): number;
}

type Frame<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

export class Topics {
  readonly #subs = new Map<string, Subscription>();
  /** Resubscriptions waiting to be sent again after a temporary refusal, with their attempt. */
  readonly #retries = new Map<Subscription, { timer: ReturnType<typeof setTimeout>; attempt: number }>();

  constructor(private readonly host: TopicsHost) {}

  get names(): string[] {
    return [...this.#subs.keys()];
  }

  /**
   * The application's subscribe(): takes a server-made subscription over (its handlers from now
   * on, nothing sent), refuses a second one for the topic, or starts one — refused with `closed`
   * when the client is, sent now when `connected`, else on the next welcome.
   */
  open(topic: string, handlers: SubscriptionHandlers, since: Position | undefined, closed: SwitchboardClientError | null, connected: boolean): Promise<Subscription> {
    const existing = this.#subs.get(topic);
    if (existing?.byServer) {
      existing.adopt(handlers);
      return Promise.resolve(existing);
    }
    if (existing) {
      return Promise.reject(new SwitchboardClientError("bad_request", `already subscribed to ${topic}: use that Subscription, or unsubscribe first`, topic));
    }
    if (closed) return Promise.reject(closed);
    const sub = new Subscription(topic, handlers, this.#subscriptionHost(), since);
    this.#subs.set(topic, sub);
    if (connected) this.subscribe(sub);
    return sub.ready;
  }

  /** Forgets `topic`; returns its Subscription when there was one. */
  remove(topic: string): Subscription | undefined {
    const sub = this.#subs.get(topic);
    this.#subs.delete(topic);
    if (sub) this.#cancelRetry(sub);
    return sub;
  }

  /** On `welcome`: every subscription again, with `since` its position. */
  resubscribeAll(): void {
    for (const sub of this.#subs.values()) this.subscribe(sub);
  }

  /** The socket went away: every subscription waits for the next one. */
  suspendAll(): void {
    for (const sub of this.#subs.values()) {
      this.#cancelRetry(sub);
      sub.suspend();
    }
  }

  /** The client stopped: subscriptions never acknowledged end with `error`; the others stay for connect(). */
  failUnacknowledged(error: SwitchboardClientError): void {
    for (const sub of this.#subs.values()) this.#cancelRetry(sub);
    for (const [topic, sub] of [...this.#subs]) {
      if (sub.acknowledged) continue;
      this.#subs.delete(topic);
      sub.fail(error, false);
    }
  }

  /** Sends `subscribe` (with `since` once a position is known) and handles its reply. */
  subscribe(sub: Subscription): void {
    const since = sub.beginSubscribe();
    const frame = since ? { type: "subscribe" as const, topic: sub.topic, since } : { type: "subscribe" as const, topic: sub.topic };
    this.host.request(
      frame,
      "forget",
      (ack) => {
        if (this.#subs.get(sub.topic) !== sub) return;
        this.#retries.delete(sub);
        sub.acknowledge(ack as Record<string, unknown>, since);
      },
      (error) => {
        if (this.#subs.get(sub.topic) !== sub) return;
        // A resubscription without a reply: the link is bad, a new one resubscribes everything.
        if (error.code === "timeout" && sub.acknowledged) return this.host.drop("subscribe timeout");
        // A resumption refused for its `since` (caps without `history`): once more without it.
        if (error.code === "forbidden" && since !== undefined && sub.dropSince()) return this.subscribe(sub);
        if (sub.acknowledged && error.temporary) return this.#retryLater(sub);
        this.#retries.delete(sub);
        this.#subs.delete(sub.topic);
        if (error.code === "timeout") this.host.send({ type: "unsubscribe", topic: sub.topic });
        if (sub.acknowledged) this.host.emit("error", error);
        sub.fail(error, true);
      },
    );
  }

  #retryLater(sub: Subscription): void {
    const attempt = this.#retries.get(sub)?.attempt ?? 0;
    sub.suspend();
    const delay = this.host.random() * backoffCeiling(attempt, RESUBSCRIBE_RETRY);
    const timer = setTimeout(() => {
      if (this.#subs.get(sub.topic) === sub && this.#retries.get(sub)?.timer === timer) this.subscribe(sub);
    }, delay);
    this.#retries.set(sub, { timer, attempt: attempt + 1 });
  }

  #cancelRetry(sub: Subscription): void {
    const retry = this.#retries.get(sub);
    if (retry === undefined) return;
    clearTimeout(retry.timer);
    this.#retries.delete(sub);
  }

  /** Routes a topic frame; false when `frame` is not one. */
  receive(frame: ServerFrame): boolean {
    switch (frame.type) {
      case "message":
        return this.#message(frame), true;
      case "resync":
        return this.#resync(frame), true;
      case "presence.join":
      case "presence.leave":
        return this.#presence(frame), true;
      case "subscribed":
        return this.#subscribed(frame), true;
      case "unsubscribed":
        return this.#unsubscribed(frame), true;
      default:
        return false;
    }
  }

  #message(frame: Frame<"message">): void {
    const sub = this.#subs.get(frame.topic);
    if (!sub) {
      const { type: _type, ...message } = frame;
      return this.host.emit("message", message);
    }
    if (sub.receive(frame) === "gap") this.#repair(sub);
  }

  #resync(frame: Frame<"resync">): void {
    const sub = this.#subs.get(frame.topic);
    if (sub) sub.receiveResync(frame);
    else this.host.emit("resync", { topic: frame.topic, reason: "resync", seq: frame.seq, epoch: frame.epoch });
  }

  #presence(frame: Frame<"presence.join" | "presence.leave">): void {
    const event: PresenceEvent = { topic: frame.topic, type: frame.type === "presence.join" ? "join" : "leave", user: frame.user };
    this.#subs.get(frame.topic)?.receivePresence(event);
    this.host.emit("presence", event);
  }

  /** The server subscribed this socket: track the topic from the position it gave, resume it on reconnect. */
  #subscribed(frame: Frame<"subscribed">): void {
    const seq = typeof frame.seq === "number" ? frame.seq : undefined;
    const epoch = typeof frame.epoch === "string" ? frame.epoch : undefined;
    if (!this.#subs.has(frame.topic)) {
      const position = seq !== undefined && epoch !== undefined ? { seq, epoch } : null;
      const handlers = { onMessage: (m: Message) => this.host.emit("message", m) };
      this.#subs.set(frame.topic, Subscription.fromServer(frame.topic, handlers, this.#subscriptionHost(), position));
    }
    this.host.emit("subscribed", { topic: frame.topic, seq, epoch });
  }

  /** The server removed this socket from the topic: stop tracking it; a reconnect does not resubscribe it. */
  #unsubscribed(frame: Frame<"unsubscribed">): void {
    const info = { topic: frame.topic, reason: typeof frame.reason === "string" ? frame.reason : "server" };
    this.remove(frame.topic)?.end(info);
    this.host.emit("unsubscribed", info);
  }

  /** A gap in `seq`: leave and rejoin with `since` the last delivered position; the replay fills it. */
  #repair(sub: Subscription): void {
    this.host.send({ type: "unsubscribe", topic: sub.topic });
    this.subscribe(sub);
  }

  #subscriptionHost() {
    return { unsubscribe: (t: string) => this.host.unsubscribe(t), resync: (i: ResyncInfo) => this.host.emit("resync", i) };
  }
}
