/**
 * When a socket with an expiring credential is told `expiring` (SPEC §4): once a tenth of the
 * credential's lifetime is left, at least 5 s and at most 60 s before its end. Pure; all times in
 * epoch milliseconds.
 */
export const MIN_NOTICE_MS = 5_000;
export const MAX_NOTICE_MS = 60_000;

/**
 * The moment to send `expiring` for a credential valid from `issuedAtMs` to `expiresAtMs`: a
 * tenth of the lifetime before the end, clamped to [5 s, 60 s]. A credential with less than that
 * left when the socket gets it is told at once (`nowMs`).
 */
export function noticeAt(issuedAtMs: number, expiresAtMs: number, nowMs: number): number {
  const lifetime = Math.max(0, expiresAtMs - Math.min(issuedAtMs, nowMs));
  const notice = Math.min(MAX_NOTICE_MS, Math.max(MIN_NOTICE_MS, lifetime / 10));
  return Math.max(nowMs, expiresAtMs - notice);
}
