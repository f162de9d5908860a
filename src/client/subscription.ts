/**
 * One topic the application subscribed to, and its position: the last `{seq, epoch}` handed to
 * the application. The position is what makes reconnection lossless and duplicate-free — every
 * (re)subscription asks for `since` it, and every message is judged against it.
 */
import type { EphemeralMessageFrame, MessageFrame, Position, User } from "../protocol/frames.ts";
import { safeCall } from "./emitter.ts";
import { SwitchboardClientError } from "./errors.ts";

/**
 * A publication as the application gets it. On an ordered topic it carries its position
 * (`seq`, `epoch`); on an ephemeral one (SPEC §5 `delivery: "ephemeral"`) it has neither, and the
 * SDK hands it on as it comes: no duplicate or gap detection, no recovery.
 */
export type Message = Omit<MessageFrame, "type"> | Omit<EphemeralMessageFrame, "type">;

/** Why the application must reload its state for a topic. */
export interface ResyncInfo {
  topic: string;
  /**
   * `resync`: the server lost continuity (history gone, epoch changed);
   * `not_recovered`: a resubscription's `since` was no longer in history (`recovered:false`).
   */
  reason: "resync" | "not_recovered";
  /** Live messages continue after this position. */
  seq: number;
  epoch: string;
}

export interface PresenceEvent {
  topic: string;
  type: "join" | "leave";
  user: User;
}

export interface SubscriptionHandlers {
  /** Each publication once, in `seq` order within an epoch. */
  onMessage?(message: Message): void;
  /** Continuity was lost: reload the topic's state (e.g. from your API), then keep consuming. */
  onResync?(info: ResyncInfo): void;
  /** After each resubscription with `since` (reconnect, gap repair): whether everything missed was replayed. */
  onRecovered?(recovered: boolean, topic: string): void;
  onPresence?(event: PresenceEvent): void;
  /** The server refused a resubscription (e.g. `forbidden`); the subscription has ended. */
  onError?(error: SwitchboardClientError): void;
  /** The server removed this socket from the topic (SPEC §6 `POST /api/unsubscribe`); the subscription has ended. */
  onUnsubscribed?(info: UnsubscribedInfo): void;
}

export interface UnsubscribedInfo {
  topic: string;
  /** `server`: the application's backend removed the user (`POST /api/unsubscribe`). */
  reason: string;
}

export type Verdict = "deliver" | "duplicate" | "gap";

/**
 * Judges a message against the last delivered position: the next seq of the same epoch is
 * delivered; an older or equal seq of the same epoch is a duplicate; a later seq or another epoch
 * is a gap (something was missed, or the epoch changed without a `resync` first).
 */
export function classify(last: Position, message: Position): Verdict {
  if (message.epoch !== last.epoch) return "gap";
  if (message.seq <= last.seq) return "duplicate";
  return message.seq === last.seq + 1 ? "deliver" : "gap";
}

/**
 * - `pending`: waiting for a connection to subscribe on;
 * - `subscribing`: a subscribe is in flight (first time, after a reconnect, or repairing a gap);
 * - `active`: acknowledged, live messages are judged one by one;
 * - `closed`: unsubscribed or refused; no handler is called any more.
 */
export type SubscriptionState = "pending" | "subscribing" | "active" | "closed";

interface Host {
  unsubscribe(topic: string): Promise<void>;
  resync(info: ResyncInfo): void;
}

export class Subscription {
  #state: SubscriptionState = "pending";
  #handlers: SubscriptionHandlers;
  /** `server`: made by a `subscribed` frame, not by the application's subscribe(). */
  #origin: "client" | "server" = "client";
  #position: Position | null;
  /** The server refused `since` (no `history` action, SPEC §5): the next subscribe goes without it, continuity lost. */
  #withoutSince = false;
  #acknowledged = false;
  #settle: { resolve(sub: Subscription): void; reject(error: SwitchboardClientError): void } | null = null;
  /** Resolves on the first ack, rejects on a refusal. */
  readonly ready: Promise<Subscription>;

  constructor(
    readonly topic: string,
    handlers: SubscriptionHandlers,
    private readonly host: Host,
    since?: Position,
  ) {
    this.#handlers = handlers;
    this.#position = since ? { seq: since.seq, epoch: since.epoch } : null;
    this.ready = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
  }

  get state(): SubscriptionState {
    return this.#state;
  }

  /** The last position delivered to the application (or acknowledged), null before the first ack. */
  get position(): Position | null {
    return this.#position ? { ...this.#position } : null;
  }

  get acknowledged(): boolean {
    return this.#acknowledged;
  }

  /** Leaves the topic; handlers are not called any more from now on. */
  unsubscribe(): Promise<void> {
    return this.host.unsubscribe(this.topic);
  }

  /** @internal The `since` of the next subscribe frame. */
  beginSubscribe(): Position | undefined {
    this.#state = "subscribing";
    if (this.#withoutSince) return undefined;
    return this.#position ?? undefined;
  }

  /**
   * @internal A resubscription with `since` was `forbidden`: the credential may subscribe but not
   * read history (SPEC §5 caps without `history`). True when it is worth one more subscribe
   * without `since` (continuity then reported lost); false when that was already tried.
   */
  dropSince(): boolean {
    if (this.#withoutSince || !this.#acknowledged || this.#position === null) return false;
    this.#withoutSince = true;
    return true;
  }

  /** @internal The connection went away; a new one will subscribe again. */
  suspend(): void {
    if (this.#state !== "closed") this.#state = "pending";
  }

  /** @internal The ack of a subscribe sent with `since` (or without). */
  acknowledge(ack: { seq?: unknown; epoch?: unknown; recovered?: unknown }, since: Position | undefined): void {
    if (this.#state === "closed") return;
    const now: Position | null =
      typeof ack.seq === "number" && typeof ack.epoch === "string" ? { seq: ack.seq, epoch: ack.epoch } : null;
    this.#state = "active";
    if (!since && this.#withoutSince) {
      // Resumed without history: whatever was published meanwhile is not replayed.
      this.#withoutSince = false;
      safeCall((r: boolean) => this.#handlers.onRecovered?.(r, this.topic), false);
      if (now) {
        this.#position = now;
        this.#resync({ topic: this.topic, reason: "not_recovered", ...now });
      }
    } else if (since) {
      const recovered = ack.recovered === true;
      safeCall((r: boolean) => this.#handlers.onRecovered?.(r, this.topic), recovered);
      // Recovered: the replay follows the ack, judged against the position we already hold.
      if (!recovered && now) this.#resync({ topic: this.topic, reason: "not_recovered", ...now });
    } else if (now) {
      this.#position = now;
    }
    if (!this.#acknowledged) {
      this.#acknowledged = true;
      this.#settle?.resolve(this);
      this.#settle = null;
    }
  }

  /** @internal Returns "gap" when the caller must repair the topic with a resubscription. */
  receive(frame: MessageFrame | EphemeralMessageFrame): Verdict {
    if (this.#state === "closed" || this.#state === "pending") return "duplicate";
    if (frame.seq === undefined || typeof frame.epoch !== "string") {
      // Ephemeral: nothing to judge it against, nothing to recover.
      const { type: _type, ...message } = frame;
      safeCall((m: Message) => this.#handlers.onMessage?.(m), message as Message);
      return "deliver";
    }
    if (this.#position === null) return "duplicate"; // before the first ack: the app asked for "from now"
    const verdict = classify(this.#position, frame);
    if (verdict === "deliver") {
      this.#position = { seq: frame.seq, epoch: frame.epoch };
      const { type: _type, ...message } = frame;
      safeCall((m: Message) => this.#handlers.onMessage?.(m), message);
    }
    // While a (re)subscription is in flight, its replay will fill any gap: do not start another.
    if (verdict === "gap" && this.#state === "subscribing") return "duplicate";
    return verdict;
  }

  /** @internal A `resync` frame: live messages go on after `seq` in `epoch`. */
  receiveResync(frame: { seq: number; epoch: string }): void {
    if (this.#state === "closed") return;
    this.#resync({ topic: this.topic, reason: "resync", seq: frame.seq, epoch: frame.epoch });
  }

  /** @internal */
  receivePresence(event: PresenceEvent): void {
    if (this.#state === "active" || this.#state === "subscribing") safeCall((e: PresenceEvent) => this.#handlers.onPresence?.(e), event);
  }

  /** @internal Ends the subscription: rejects `ready` if it was never acknowledged, else calls onError. */
  fail(error: SwitchboardClientError, notify: boolean): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    if (!this.#acknowledged) {
      this.#settle?.reject(error);
      this.#settle = null;
    } else if (notify) {
      safeCall((e: SwitchboardClientError) => this.#handlers.onError?.(e), error);
    }
  }

  /** True when the server made it (`subscribed` frame) and the application has not subscribed itself. */
  get byServer(): boolean {
    return this.#origin === "server";
  }

  /** @internal Made by the server's `subscribed` frame: acknowledged already, tracked from `position`. */
  static fromServer(topic: string, handlers: SubscriptionHandlers, host: Host, position: Position | null): Subscription {
    const sub = new Subscription(topic, handlers, host);
    sub.#origin = "server";
    sub.#position = position;
    sub.#state = "active";
    sub.#acknowledged = true;
    sub.#settle?.resolve(sub);
    sub.#settle = null;
    return sub;
  }

  /** @internal The application subscribed to a topic the server had subscribed it to: its handlers from now on. */
  adopt(handlers: SubscriptionHandlers): void {
    this.#handlers = handlers;
    this.#origin = "client";
  }

  /** @internal The server removed the socket from the topic: ends it and tells onUnsubscribed. */
  end(info: UnsubscribedInfo): void {
    if (this.#state === "closed") return;
    this.fail(new SwitchboardClientError("cancelled", `the server unsubscribed this client from ${this.topic}`, this.topic), false);
    safeCall((i: UnsubscribedInfo) => this.#handlers.onUnsubscribed?.(i), info);
  }

  #resync(info: ResyncInfo): void {
    this.#position = { seq: info.seq, epoch: info.epoch };
    safeCall((i: ResyncInfo) => this.#handlers.onResync?.(i), info);
    this.host.resync(info);
  }
}
