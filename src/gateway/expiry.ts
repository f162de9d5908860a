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

/** setTimeout's longest delay (~24.8 days); a later moment is reached in several steps. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * One socket's two credential timers: `expiring` at noticeAt(), then the end. `set` replaces both
 * (a refresh); `clear` when the socket closes. A credential without expiry sets none.
 */
export class CredentialTimers {
  private notice: ReturnType<typeof setTimeout> | null = null;
  private end: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly onNotice: (expiresAtS: number) => void,
    private readonly onExpired: () => void,
  ) {}

  /** Times in epoch seconds, as in JWTs; `issuedAtS` null counts the lifetime from now. */
  set(issuedAtS: number | null, expiresAtS: number | null, nowMs = Date.now()): void {
    this.clear();
    if (expiresAtS === null) return;
    const expiresAtMs = expiresAtS * 1000;
    const at = noticeAt((issuedAtS ?? nowMs / 1000) * 1000, expiresAtMs, nowMs);
    this.notice = this.at(at, () => this.onNotice(expiresAtS), (t) => (this.notice = t));
    this.end = this.at(expiresAtMs, () => this.onExpired(), (t) => (this.end = t));
  }

  clear(): void {
    if (this.notice !== null) clearTimeout(this.notice);
    if (this.end !== null) clearTimeout(this.end);
    this.notice = this.end = null;
  }

  /** A timer for the moment `atMs`, re-armed when it is further away than one timer reaches. */
  private at(atMs: number, fire: () => void, keep: (t: ReturnType<typeof setTimeout>) => void): ReturnType<typeof setTimeout> {
    const delay = atMs - Date.now();
    return setTimeout(() => {
      if (atMs - Date.now() > 1000) keep(this.at(atMs, fire, keep));
      else fire();
    }, Math.max(0, Math.min(delay, MAX_DELAY_MS)));
  }
}
