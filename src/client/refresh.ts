/**
 * In-band token refresh (SPEC §4): the server's `{type:"expiring", expiresAt}` is answered with
 * `{type:"refresh", token}` on the same socket, token from `getToken({reason:"expiring"})`, and
 * acknowledged with `ack {expiresAt}`. Nothing else changes: no subscription is dropped or sent
 * again, no request is held back.
 *
 * A failed getToken or a refused refresh is an `error` event. A temporary failure is retried with
 * the backoff while the credential is still valid; `unauthorized` is not retried — the server
 * closes the socket with 4001 at the expiry, and the client then asks getToken once more before
 * reconnecting (client.ts).
 */
import { backoffDelay, type ReconnectOptions } from "./backoff.ts";
import { SwitchboardClientError } from "./errors.ts";
import type { Emit, TokenRequest } from "./events.ts";
import type { Outgoing, Request } from "./requests.ts";
import { describe } from "./util.ts";

export interface RefreshHost {
  emit: Emit;
  request(frame: Outgoing, onLost: Request["onLost"], ok: Request["ok"], fail: Request["fail"]): void;
}

export interface RefreshOptions {
  getToken: ((request: TokenRequest) => Promise<string>) | undefined;
  reconnect: ReconnectOptions;
  random: () => number;
  /** How long getToken may take to answer an `expiring` before that try counts as a `timeout`. */
  requestTimeoutMs: number;
}

export class TokenRefresh {
  /** Bumped by cancel(): a getToken or a retry of an abandoned socket does nothing. */
  #gen = 0;
  #busy = false;
  #failures = 0;
  #expiresAtMs = 0;
  #retry: ReturnType<typeof setTimeout> | undefined;
  /** The deadline of the getToken under way. */
  #deadline: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly o: RefreshOptions,
    private readonly host: RefreshHost,
  ) {}

  /** The server's `expiring` frame. */
  expiring(expiresAt: number): void {
    this.host.emit("expiring", { expiresAt });
    if (!this.o.getToken || this.#busy) return;
    clearTimeout(this.#retry);
    this.#expiresAtMs = expiresAt * 1000;
    this.#failures = 0;
    void this.#run(this.#gen);
  }

  /** The socket is gone: forget any refresh under way (a new socket gets its token at connect). */
  cancel(): void {
    this.#gen++;
    this.#busy = false;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    clearTimeout(this.#deadline);
  }

  /**
   * getToken({reason: "expiring"}), or a `timeout` after requestTimeoutMs: a callback that never
   * settles (a fetch hanging on a bad network) is retried like a failing one while the credential
   * lives, instead of blocking every later refresh of this socket.
   */
  #token(): Promise<string> {
    const ms = this.o.requestTimeoutMs;
    let deadline: ReturnType<typeof setTimeout> | undefined;
    return new Promise<string>((resolve, reject) => {
      deadline = this.#deadline = setTimeout(() => reject(new SwitchboardClientError("timeout", `getToken did not answer within ${ms} ms`)), ms);
      this.o.getToken!({ reason: "expiring" }).then(resolve, reject);
    }).finally(() => clearTimeout(deadline));
  }

  async #run(gen: number): Promise<void> {
    this.#busy = true;
    let token: string;
    try {
      token = await this.#token();
    } catch (e) {
      if (gen !== this.#gen) return;
      this.#busy = false;
      const error = e instanceof SwitchboardClientError ? e : new SwitchboardClientError("unavailable", `could not refresh the token: ${describe(e)}`);
      return this.#failed(error, gen);
    }
    if (gen !== this.#gen) return;
    this.host.request(
      { type: "refresh", token },
      "fail",
      (ack) => {
        this.#busy = false;
        const expiresAt = (ack as { expiresAt?: unknown }).expiresAt;
        this.host.emit("refreshed", { expiresAt: typeof expiresAt === "number" ? expiresAt : undefined });
      },
      (error) => {
        if (gen !== this.#gen) return;
        this.#busy = false;
        if (error.code !== "closed") this.#failed(error, gen);
      },
    );
  }

  #failed(error: SwitchboardClientError, gen: number): void {
    this.host.emit("error", error);
    if (gen !== this.#gen || !error.temporary) return;
    const delay = backoffDelay(++this.#failures, this.o.reconnect, this.o.random);
    if (Date.now() + delay >= this.#expiresAtMs) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (gen === this.#gen && !this.#busy) void this.#run(gen);
    }, delay);
  }
}
