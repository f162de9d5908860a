/**
 * When to reconnect after a socket closed: pure functions of the close code, the number of
 * consecutive failed attempts, the options and a random source (unit-tested in
 * test/client-backoff.test.ts). What each code calls for comes from the one table in
 * protocol/codes.ts (`closeRules`); this file turns that advice into a delay.
 *
 * Full jitter (every delay uniform in [0, ceiling]) spreads a crowd of clients dropped at the same
 * instant — a deploy, a network blip — over the whole window instead of sending them back
 * together (socket.io #2998, Phoenix's fixed 10 ms first retry).
 */
import { closeRule } from "../protocol/codes.ts";

export interface ReconnectOptions {
  /** First backoff ceiling: attempt 0 waits in [0, baseMs]. Default 500. */
  baseMs: number;
  /** Largest ceiling: attempt n waits in [0, min(capMs, baseMs·2ⁿ)]. Default 30 000. */
  capMs: number;
  /**
   * After 1012 (server restarting), the reconnect waits in [0, max(restartJitterMs, the backoff
   * ceiling)]: prompt, but a whole machine's clients do not arrive at the next one in the same
   * millisecond. Default 1000.
   */
  restartJitterMs: number;
  /** After 1013 (overloaded) or 4008 (rate limited), this floor is added to the backoff. Default 5000. */
  overloadedMinMs: number;
  /**
   * A connection counts as working once it has stayed open (welcomed) this long: only then does the
   * attempt counter start again from 0. A server that accepts and closes at once is thus retried
   * with a growing backoff, not every few hundred milliseconds forever. Default 10 000.
   */
  stableMs: number;
}

export const DEFAULT_RECONNECT: ReconnectOptions = {
  baseMs: 500,
  capMs: 30_000,
  restartJitterMs: 1000,
  overloadedMinMs: 5000,
  stableMs: 10_000,
};

/** The largest delay of attempt `attempt`: min(capMs, baseMs·2^attempt). */
export function backoffCeiling(attempt: number, options: Pick<ReconnectOptions, "baseMs" | "capMs">): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 52);
  return Math.min(options.capMs, options.baseMs * 2 ** exponent);
}

/**
 * The delay before attempt `attempt` (0 = the first retry after a working connection), uniform in
 * [0, min(capMs, baseMs·2^attempt)]. `random` returns values in [0, 1), like Math.random.
 */
export function backoffDelay(attempt: number, options: Pick<ReconnectOptions, "baseMs" | "capMs">, random: () => number = Math.random): number {
  return Math.round(random() * backoffCeiling(attempt, options));
}

export interface CloseInfo {
  code: number;
  /** True when the WebSocket reached `open` (the upgrade succeeded) before it closed. */
  opened: boolean;
  /** True when this client closed it on purpose (`close()`), not for a dead link. */
  byClient: boolean;
  /**
   * True when new credentials can be fetched before the next attempt (a `getToken` option, and
   * the last token was not refused already): a 4001 then reconnects instead of stopping.
   */
  canReauthenticate?: boolean;
}

/** Why the client stops: its own close(), credentials refused (4001), or a code that says stop. */
export type StopReason = "client" | "unauthorized" | "never";

export type ReconnectDecision = { reconnect: false; stop: StopReason } | { reconnect: true; delay: number };

/**
 * What to do after a close (SPEC "Close codes", protocol/codes.ts `closeRules`):
 * - closed by the client itself → stop;
 * - `reauthenticate` (4001) → with new credentials available, reconnect at once (then back off);
 *   otherwise stop: the application re-authenticates and calls connect();
 * - `never` (1002, 1003, 1007, 1008, 4003) on a socket that had opened → stop;
 * - `now` (4002, 4009) → reconnect at once and resume, then back off if that fails; spread (1012)
 *   → within [0, max(restartJitterMs, backoff ceiling)];
 * - `backoff` → the full-jitter backoff, plus overloadedMinMs for slowDown (1013, 4008).
 * A socket that never opened is a failed upgrade (browsers report 401/403/503 all as 1006): backoff.
 */
export function decideReconnect(close: CloseInfo, attempt: number, options: ReconnectOptions, random: () => number = Math.random): ReconnectDecision {
  if (close.byClient) return { reconnect: false, stop: "client" };
  const rule = closeRule(close.code);
  if (rule.reconnect === "reauthenticate" && !close.canReauthenticate) return { reconnect: false, stop: "unauthorized" };
  const backoff = backoffDelay(attempt, options, random);
  if (!close.opened) return { reconnect: true, delay: backoff };
  switch (rule.reconnect) {
    case "never":
      return { reconnect: false, stop: "never" };
    case "now":
    case "reauthenticate":
      if (rule.spread) return { reconnect: true, delay: Math.round(random() * Math.max(options.restartJitterMs, backoffCeiling(attempt, options))) };
      return { reconnect: true, delay: attempt === 0 ? 0 : backoff };
    case "backoff":
      return { reconnect: true, delay: backoff + (rule.slowDown ? options.overloadedMinMs : 0) };
  }
}
