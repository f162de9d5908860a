/**
 * When to reconnect after a socket closed: pure functions of the close code, the number of
 * consecutive failed attempts, the options and a random source (unit-tested in
 * test/client-backoff.test.ts).
 *
 * Full jitter (every delay uniform in [0, ceiling]) spreads a crowd of clients dropped at the same
 * instant — a deploy, a network blip — over the whole window instead of sending them back
 * together (socket.io #2998, Phoenix's fixed 10 ms first retry).
 */

export interface ReconnectOptions {
  /** First backoff ceiling: attempt 0 waits in [0, baseMs]. Default 500. */
  baseMs: number;
  /** Largest ceiling: attempt n waits in [0, min(capMs, baseMs·2ⁿ)]. Default 30 000. */
  capMs: number;
  /**
   * After 1012 (server restarting), the first reconnect waits in [0, restartJitterMs]: prompt,
   * but a whole machine's clients do not arrive at the next one in the same millisecond. Default 1000.
   */
  restartJitterMs: number;
  /** After 1013 (overloaded) or 4008 (rate limited), this floor is added to the backoff. Default 5000. */
  overloadedMinMs: number;
}

export const DEFAULT_RECONNECT: ReconnectOptions = {
  baseMs: 500,
  capMs: 30_000,
  restartJitterMs: 1000,
  overloadedMinMs: 5000,
};

/**
 * The delay before attempt `attempt` (0 = the first retry after a working connection), uniform in
 * [0, min(capMs, baseMs·2^attempt)]. `random` returns values in [0, 1), like Math.random.
 */
export function backoffDelay(attempt: number, options: Pick<ReconnectOptions, "baseMs" | "capMs">, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 52);
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** exponent);
  return Math.round(random() * ceiling);
}

export interface CloseInfo {
  code: number;
  /** True when the WebSocket reached `open` (the upgrade succeeded) before it closed. */
  opened: boolean;
  /** True when this client closed it on purpose (`close()`), not for a dead link. */
  byClient: boolean;
}

export type ReconnectDecision =
  | { reconnect: false; unauthorized: boolean }
  | { reconnect: true; delay: number };

/**
 * What to do after a close (SPEC "Close codes"):
 * - closed by the client itself → stop;
 * - 4001 → stop, the credentials are no good: the application re-authenticates and calls connect();
 * - 1002, 1003, 1007, 1008 on a socket that had opened → stop: the client is broken, retrying repeats it;
 * - 1012 → reconnect within [0, restartJitterMs] (the next machine is up), then back off if that fails;
 * - 4002, 4009 → reconnect at once and resume, then back off if that fails;
 * - 1013, 4008 → overloadedMinMs plus the backoff;
 * - anything else (1006 dead link or refused upgrade, 1001, 1011, a server-sent 1000, …) → backoff.
 * A socket that never opened is a failed upgrade (browsers report 401/403/503 all as 1006): backoff.
 */
export function decideReconnect(
  close: CloseInfo,
  attempt: number,
  options: ReconnectOptions,
  random: () => number = Math.random,
): ReconnectDecision {
  if (close.byClient) return { reconnect: false, unauthorized: false };
  if (close.code === 4001) return { reconnect: false, unauthorized: true };
  const backoff = backoffDelay(attempt, options, random);
  if (!close.opened) return { reconnect: true, delay: backoff };
  switch (close.code) {
    case 1002:
    case 1003:
    case 1007:
    case 1008:
      return { reconnect: false, unauthorized: false };
    case 1012:
      return { reconnect: true, delay: attempt === 0 ? Math.round(random() * options.restartJitterMs) : backoff };
    case 4002:
    case 4009:
      return { reconnect: true, delay: attempt === 0 ? 0 : backoff };
    case 1013:
    case 4008:
      return { reconnect: true, delay: options.overloadedMinMs + backoff };
    default:
      return { reconnect: true, delay: backoff };
  }
}
