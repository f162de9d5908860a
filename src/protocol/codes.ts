/**
 * Every code a client can see, in one place. Close codes say what a client should do next
 * (the SPEC's table); error codes travel in `error` frames and HTTP bodies.
 */

export const Close = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  invalidPayload: 1007,
  policy: 1008,
  tooLarge: 1009,
  internal: 1011,
  restarting: 1012,
  overloaded: 1013,
  unauthorized: 4001,
  authTimeout: 4002,
  /** Disconnected by the server API (`/api/disconnect`): do not reconnect on your own. */
  serverDisconnect: 4003,
  rateLimited: 4008,
  slowConsumer: 4009,
} as const;
export type CloseCode = (typeof Close)[keyof typeof Close];

/**
 * What a client does after a close:
 * - `now`: reconnect at once and resume with `since`;
 * - `backoff`: reconnect after a full-jitter backoff, then resume with `since`;
 * - `reauthenticate`: get new credentials first (the SDK calls `getToken` again); without a way to
 *   get them, stop and let the application sign in again — never retry the same credentials;
 * - `never`: stop; reconnecting would repeat the mistake, or the server said so (4003).
 */
export type ReconnectAdvice = "now" | "backoff" | "reauthenticate" | "never";

export interface CloseRule {
  /** What the code means, in the words of docs/protocol.md. */
  meaning: string;
  reconnect: ReconnectAdvice;
  /**
   * `now`, spread over a short window (the SDK's `reconnect.restartJitterMs`): every client of a
   * restarting machine leaves it at once, and must not reach the next machine in the same millisecond.
   */
  spread?: true;
  /** `backoff` plus a floor (the SDK's `reconnect.overloadedMinMs`): the server asked for less load. */
  slowDown?: true;
}

/**
 * The one reconnect table: the SDK follows it (client/backoff.ts) and docs/protocol.md quotes it
 * (test/client-backoff.test.ts checks the quote). A code not listed — 1005, 1006 (no close frame:
 * a dead link, a refused upgrade), a proxy's own codes — means `backoff`. The advice is for a
 * socket that opened: a failed upgrade always backs off (browsers report 401, 403, 429 and 503
 * alike as 1006).
 *
 * A server-sent 1000 backs off: Switchboard never sends it (4003 is how the server tells a client
 * to stay away), so a 1000 comes from something in between — a proxy or load balancer ending an
 * idle or old connection — and is no reason to stay offline.
 */
export const closeRules: Record<CloseCode, CloseRule> = {
  [Close.normal]: { meaning: "normal closure (from the server's side: a proxy in between)", reconnect: "backoff" },
  [Close.goingAway]: { meaning: "going away (a proxy or the server shutting down)", reconnect: "backoff" },
  [Close.protocolError]: { meaning: "WebSocket framing error", reconnect: "never" },
  [Close.unsupportedData]: { meaning: "binary frame", reconnect: "never" },
  [Close.invalidPayload]: { meaning: "invalid UTF-8", reconnect: "never" },
  [Close.policy]: { meaning: "policy violation (protocol misuse)", reconnect: "never" },
  [Close.tooLarge]: { meaning: "frame larger than `MAX_PAYLOAD_BYTES`", reconnect: "backoff" },
  [Close.internal]: { meaning: "internal error", reconnect: "backoff" },
  [Close.restarting]: { meaning: "server restarting (deploy, drain, connection age)", reconnect: "now", spread: true },
  [Close.overloaded]: { meaning: "overloaded, try again later", reconnect: "backoff", slowDown: true },
  [Close.unauthorized]: { meaning: "bad token, session expired or revoked", reconnect: "reauthenticate" },
  [Close.authTimeout]: { meaning: "authentication timeout", reconnect: "now" },
  [Close.serverDisconnect]: { meaning: "disconnected by the server (`POST /api/disconnect`)", reconnect: "never" },
  [Close.rateLimited]: { meaning: "rate limited: too many frames (text, ping or pong)", reconnect: "backoff", slowDown: true },
  [Close.slowConsumer]: { meaning: "slow consumer: backpressure limit exceeded", reconnect: "now" },
};

const unlisted: CloseRule = { meaning: "any other code (1005, 1006: no close frame)", reconnect: "backoff" };

/** The rule for `code`; `backoff` for a code not in the table. */
export function closeRule(code: number): CloseRule {
  return (closeRules as Record<number, CloseRule>)[code] ?? unlisted;
}

export const ErrorCode = {
  badRequest: "bad_request",
  unauthorized: "unauthorized",
  forbidden: "forbidden",
  rateLimited: "rate_limited",
  limitExceeded: "limit_exceeded",
  tooLarge: "too_large",
  notFound: "not_found",
  unavailable: "unavailable",
  overloaded: "overloaded",
  internal: "internal",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** HTTP status for each error code, so HTTP and WebSocket errors stay one vocabulary. */
export const httpStatus: Record<ErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  rate_limited: 429,
  limit_exceeded: 429,
  too_large: 413,
  not_found: 404,
  unavailable: 503,
  overloaded: 503,
  internal: 500,
};

/** An error as a value: thrown inside handlers, turned into an `error` frame or an HTTP body at the edge. */
export class SwitchboardError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Seconds a client should wait before retrying (HTTP `Retry-After`). */
    readonly retryAfter?: number,
    /** `cause`: what went wrong underneath, for logs only — never sent to a client. */
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "SwitchboardError";
  }
}
