/** The one error type the SDK rejects with: a code to branch on, never a bare string. */
import type { ErrorCode } from "../protocol/codes.ts";

/**
 * - the server's error codes (`bad_request`, `forbidden`, `rate_limited`, `too_large`,
 *   `not_found`, `unavailable`, `internal`, …), from an `error` frame;
 * - `timeout`: no reply within `requestTimeoutMs` of sending the request;
 * - `closed`: the client stopped (close(), 4001, a fatal close code) before the reply;
 * - `cancelled`: the subscription was unsubscribed before its ack;
 * - `unauthorized`: the server closed with 4001, or a getTicket/getToken callback said so.
 */
export type ClientErrorCode = ErrorCode | "timeout" | "closed" | "cancelled" | "unauthorized";

export class SwitchboardClientError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    /** The topic of the request that failed, when there is one. */
    readonly topic?: string,
  ) {
    super(message);
    this.name = "SwitchboardClientError";
  }

  /**
   * True when retrying the same request later may succeed: `overloaded` too (the offline queue
   * is full until the next connection drains it; the server's 503 "try again shortly").
   */
  get temporary(): boolean {
    const code = this.code;
    return code === "timeout" || code === "unavailable" || code === "rate_limited" || code === "internal" || code === "overloaded";
  }
}
