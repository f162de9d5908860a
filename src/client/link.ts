/**
 * One socket at a time: an attempt gets credentials (ticket or token), opens the WebSocket, sends
 * the token as the first frame, and then watches the link — `connectTimeoutMs` until `welcome`,
 * a ping every `pingIntervalMs` answered within `pingTimeoutMs`. What happens after a socket ends
 * is the client's decision (client.ts); the Link only reports it, once, for the current socket.
 *
 * Every socket or attempt has a generation; forgetting it (reset) bumps the generation, so that a
 * late callback of an abandoned socket or credentials call does nothing.
 */
import type { ClientFrame, ServerFrame } from "../protocol/frames.ts";
import { SwitchboardClientError } from "./errors.ts";
import type { TokenRequest } from "./events.ts";
import type { ResolvedOptions } from "./options.ts";
import { describe, detach, withTicket } from "./util.ts";

export interface LinkHost {
  /** A frame arrived on the current socket. */
  frame(frame: ServerFrame): void;
  /** The current socket or attempt ended (1006 for a link judged dead from this side). */
  lost(code: number, reason: string): void;
  /** A credentials callback failed; no socket was opened. */
  credentialsFailed(error: SwitchboardClientError): void;
  /** A fresh request reference (the ping's). */
  nextRef(): number;
}

export class Link {
  #ws: WebSocket | null = null;
  #gen = 0;
  #opened = false;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;
  #pingRef: number | null = null;

  constructor(
    private readonly o: ResolvedOptions,
    private readonly host: LinkHost,
  ) {}

  /** True when the current socket reached `open` (the upgrade succeeded). */
  get opened(): boolean {
    return this.#opened;
  }

  /** Forgets whatever was current and returns the generation of the next attempt. */
  begin(): number {
    this.reset();
    return this.#gen;
  }

  /** The current generation: changes whenever the socket or attempt is forgotten. */
  get generation(): number {
    return this.#gen;
  }

  isCurrent(gen: number): boolean {
    return gen === this.#gen;
  }

  /** Runs attempt `gen`: credentials, then the socket. Reports through the host. */
  async connect(gen: number, token: TokenRequest): Promise<void> {
    // The credentials get connectTimeoutMs of their own: a getTicket/getToken that never settles
    // (a fetch hanging on a dead network) is abandoned and asked again, not waited for forever.
    this.#connectTimer = setTimeout(() => this.drop("credentials timeout"), this.o.connectTimeoutMs);
    let url = this.o.url;
    let authToken: string | undefined;
    try {
      if (this.o.getTicket) url = withTicket(url, credential("getTicket", await this.o.getTicket()));
      if (this.o.getToken) authToken = credential("getToken", await this.o.getToken(token));
    } catch (e) {
      if (gen !== this.#gen) return;
      const error = e instanceof SwitchboardClientError ? e : new SwitchboardClientError("unavailable", `could not get credentials: ${describe(e)}`);
      return this.host.credentialsFailed(error);
    }
    if (gen !== this.#gen) return;
    clearTimeout(this.#connectTimer);
    let ws: WebSocket;
    try {
      ws = this.o.createWebSocket(url);
    } catch (e) {
      return this.host.lost(1006, `could not open the socket: ${describe(e)}`);
    }
    this.#ws = ws;
    this.#connectTimer = setTimeout(() => this.drop("connect timeout"), this.o.connectTimeoutMs);
    ws.onopen = () => {
      if (gen !== this.#gen) return;
      this.#opened = true;
      if (authToken !== undefined) this.send({ type: "auth", token: authToken });
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (gen !== this.#gen) return;
      const frame = parse(ev.data);
      if (frame) this.host.frame(frame);
    };
    // A close event always follows an error. A refused upgrade closes with 1006 and no reason; Bun
    // (not a browser) says why in the error's message ("Expected 101 status code: 401"): pass it on.
    let failure = "";
    ws.onerror = (ev: Event) => {
      const message = (ev as { message?: unknown }).message;
      if (!this.#opened && typeof message === "string") failure = message;
    };
    ws.onclose = (ev: CloseEvent) => {
      if (gen === this.#gen) this.host.lost(ev.code, ev.reason || failure);
    };
  }

  send(frame: ClientFrame): void {
    try {
      this.#ws?.send(JSON.stringify(frame));
    } catch {
      // The socket is closing; its close event requeues what was in flight.
    }
  }

  /** `welcome` arrived: the attempt is over, the heartbeat starts. */
  welcomed(): void {
    clearTimeout(this.#connectTimer);
    this.#pingTimer = setInterval(() => this.#ping(), this.o.pingIntervalMs);
  }

  pong(ref: number | undefined): void {
    if (ref === undefined || ref !== this.#pingRef) return;
    clearTimeout(this.#pongTimer);
    this.#pingRef = null;
  }

  /** The link is judged dead from this side: abandon the socket without waiting for a close handshake. */
  drop(reason: string): void {
    const ws = this.#ws;
    if (ws) {
      detach(ws);
      try {
        ws.close(4000, reason);
      } catch {}
    }
    this.host.lost(1006, reason);
  }

  /** Forgets the current socket, closing it with `closeCode` when given; its callbacks go quiet. */
  reset(closeCode?: number): void {
    this.#gen++;
    const ws = this.#ws;
    this.#ws = null;
    this.#opened = false;
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
  }

  #ping(): void {
    if (this.#pingRef !== null) return;
    this.#pingRef = this.host.nextRef();
    this.send({ type: "ping", ref: this.#pingRef });
    this.#pongTimer = setTimeout(() => this.drop("ping timeout"), this.o.pingTimeoutMs);
  }
}

/**
 * What a credentials callback resolved with, when it is a credential: anything but a non-empty
 * string (`undefined` from `(await res.json()).ticket` on a 401 body) is a failed attempt with a
 * sentence saying so, not `?ticket=undefined` refused with a bare 1006 on every retry.
 */
function credential(callback: "getTicket" | "getToken", value: unknown): string {
  if (typeof value === "string" && value !== "") return value;
  throw new Error(`options.${callback} resolved ${value === "" ? "an empty string" : String(value)}, not a ${callback === "getTicket" ? "ticket" : "token"}`);
}

/** A server frame, or null for anything that is not a JSON object with a `type`. */
function parse(data: unknown): ServerFrame | null {
  if (typeof data !== "string") return null;
  try {
    const frame = JSON.parse(data) as ServerFrame | null;
    return frame !== null && typeof frame === "object" && typeof frame.type === "string" ? frame : null;
  } catch {
    return null;
  }
}
