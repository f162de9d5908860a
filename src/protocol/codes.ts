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

/** What a client should do after each close code: reconnect at once, with backoff, or not at all. */
export type ReconnectAdvice = "now" | "backoff" | "reauthenticate" | "never";

export const reconnectAdvice: Record<number, ReconnectAdvice> = {
  [Close.normal]: "never",
  [Close.goingAway]: "backoff",
  [Close.protocolError]: "never",
  [Close.unsupportedData]: "never",
  [Close.invalidPayload]: "never",
  [Close.policy]: "never",
  [Close.tooLarge]: "backoff",
  [Close.internal]: "backoff",
  [Close.restarting]: "now",
  [Close.overloaded]: "backoff",
  [Close.unauthorized]: "reauthenticate",
  [Close.authTimeout]: "now",
  [Close.serverDisconnect]: "never",
  [Close.rateLimited]: "backoff",
  [Close.slowConsumer]: "now",
};

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
