/**
 * Requests waiting for their reply (`ack`, `presence` or `error` with the same `ref`), and what a
 * lost connection does to each: a publish or presence query is sent again on the next connection
 * (a publish with its original idempotency key), a subscribe is forgotten (the subscription is
 * redone from its position), an unsubscribe is settled.
 *
 * Timeouts count from each send on an open socket, never while a request waits offline.
 */
import type { ClientFrame, ServerFrame } from "../protocol/frames.ts";
import { SwitchboardClientError } from "./errors.ts";
import { Pacer, type RateLimit } from "./pacer.ts";

export type Reply = Extract<ServerFrame, { type: "ack" | "presence" | "error" }>;

/** A client frame before it is given its `ref`. */
export type Outgoing = ClientFrame extends infer F ? (F extends unknown ? Omit<F, "ref"> : never) : never;

export interface Request {
  ref: number;
  frame: ClientFrame;
  /** On a lost connection: send it again on the next one, forget it, or fail it with `closed`. */
  onLost: "resend" | "forget" | "fail";
  sent: boolean;
  /** Length of the frame's JSON text (what the server's MAX_PAYLOAD_BYTES counts, near enough). */
  size: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  ok(reply: Reply): void;
  fail(error: SwitchboardClientError): void;
}

export class Requests {
  readonly #pending = new Map<number, Request>();
  readonly #pacer: Pacer;
  /** Set while requests wait for the pacer's next token on an open connection. */
  #paced: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly send: (frame: ClientFrame) => void,
    private readonly timeoutMs: number,
    /** Unsent requests kept while offline; one more fails at once with `overloaded`. */
    private readonly maxQueued: number = Number.POSITIVE_INFINITY,
    rateLimit: RateLimit = { perSecond: Number.POSITIVE_INFINITY, burst: Number.POSITIVE_INFINITY },
  ) {
    this.#pacer = new Pacer(rateLimit);
  }

  /** Registers a request; sends it now (or as soon as the rate limit allows) when `connected`, else on the next flush(). */
  add(ref: number, frame: Outgoing, onLost: Request["onLost"], ok: Request["ok"], fail: Request["fail"], connected: boolean): void {
    if (!connected && this.unsent() >= this.maxQueued) {
      fail(new SwitchboardClientError("overloaded", `${this.maxQueued} requests already wait for a connection`, topicOf(frame as ClientFrame)));
      return;
    }
    const full = { ...frame, ref } as ClientFrame;
    const req: Request = { ref, frame: full, onLost, sent: false, size: JSON.stringify(full).length, timer: undefined, ok, fail };
    this.#pending.set(ref, req);
    if (connected && this.#paced === undefined) this.#pump();
  }

  unsent(): number {
    let n = 0;
    for (const req of this.#pending.values()) if (!req.sent) n++;
    return n;
  }

  /** Sends every request not sent on the current connection, in the order they were issued, as fast as the rate limit allows. */
  flush(): void {
    this.#pump();
  }

  /** Sends what waits while the pacer has tokens: subscribes first (a new socket's resubscriptions), then the rest, each in issue order. */
  #pump(): void {
    clearTimeout(this.#paced);
    this.#paced = undefined;
    for (const subscribes of [true, false]) {
      for (const req of this.#pending.values()) {
        if (req.sent || (req.frame.type === "subscribe") !== subscribes) continue;
        if (!this.#pacer.take()) {
          this.#paced = setTimeout(() => this.#pump(), this.#pacer.waitMs());
          return;
        }
        this.#dispatch(req);
      }
    }
  }

  #stopPacing(): void {
    clearTimeout(this.#paced);
    this.#paced = undefined;
  }

  /** Routes a reply to its request. False when no request waits for that `ref`. */
  settle(frame: Reply): boolean {
    const req = typeof frame.ref === "number" ? this.#pending.get(frame.ref) : undefined;
    if (!req) return false;
    this.#pending.delete(req.ref);
    clearTimeout(req.timer);
    if (frame.type === "error") req.fail(new SwitchboardClientError(frame.code as never, frame.message, topicOf(req.frame)));
    else req.ok(frame);
    return true;
  }

  /** The connection is gone: requeue what is resent, settle the rest. */
  connectionLost(): void {
    this.#stopPacing();
    this.#pacer.reset(); // the next socket's bucket starts full
    const lost = new SwitchboardClientError("closed", "the connection was lost");
    for (const req of [...this.#pending.values()]) {
      clearTimeout(req.timer);
      req.timer = undefined;
      if (req.onLost === "resend") {
        req.sent = false;
        continue;
      }
      this.#pending.delete(req.ref);
      if (req.onLost === "fail") req.fail(lost);
    }
  }

  /**
   * The server closed with 1009 (a frame over its MAX_PAYLOAD_BYTES): the request in flight with
   * the largest frame fails with `error`. It is at least as large as the frame that was refused, so
   * it is over the limit itself — never an innocent one — and resending it would only repeat the
   * close. The others are resent as usual; another culprit in flight costs another 1009.
   */
  failLargestSent(error: (topic: string | undefined) => SwitchboardClientError): void {
    let largest: Request | undefined;
    for (const req of this.#pending.values()) if (req.sent && (!largest || req.size > largest.size)) largest = req;
    if (!largest) return;
    clearTimeout(largest.timer);
    this.#pending.delete(largest.ref);
    largest.fail(error(topicOf(largest.frame)));
  }

  /** The client stopped: every request (but forgotten subscribes) fails with `error`. */
  failAll(error: SwitchboardClientError): void {
    this.#stopPacing();
    for (const req of [...this.#pending.values()]) {
      clearTimeout(req.timer);
      this.#pending.delete(req.ref);
      if (req.onLost !== "forget") req.fail(error);
    }
  }

  #dispatch(req: Request): void {
    req.sent = true;
    this.send(req.frame);
    req.timer = setTimeout(() => {
      this.#pending.delete(req.ref);
      req.fail(new SwitchboardClientError("timeout", `no reply to ${req.frame.type} within ${this.timeoutMs} ms`, topicOf(req.frame)));
    }, this.timeoutMs);
  }
}

export function topicOf(frame: object): string | undefined {
  const topic = (frame as { topic?: unknown }).topic;
  return typeof topic === "string" ? topic : undefined;
}
