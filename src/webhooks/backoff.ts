/** Retry delays of webhook attempts (SPEC §6): from 1 s, doubling, capped at 60 s, with jitter. */

export interface BackoffOptions {
  /** The first retry's delay before jitter. Default 1000. */
  baseMs: number;
  /** No delay is longer than this. Default 60 000. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1000, maxMs: 60_000 };

/**
 * The delay before retry number `failures` (1 after the first failed attempt): base × 2^(failures−1),
 * spread ±20 % so that many events failing together do not come back together, and never past
 * `maxMs`. `random` is injectable for tests.
 */
export function retryDelayMs(failures: number, options: BackoffOptions = DEFAULT_BACKOFF, random = Math.random): number {
  const exponent = Math.min(Math.max(failures, 1) - 1, 30);
  const delay = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  return Math.min(options.maxMs, Math.round(delay * (0.8 + 0.4 * random())));
}
