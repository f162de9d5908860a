/**
 * Small stores the auth layer needs, each one role. Memory implementations live in memory.ts,
 * Redis ones in redis.ts; test/suites/stores.suite.ts runs against both.
 */
import type { User } from "../protocol/frames.ts";
import type { Caps } from "../auth/caps.ts";

/**
 * What a ticket stands for: the user and the session that asked for it, and the capabilities
 * of the credential it was issued for (SPEC §5; absent or null: the default rules).
 */
export interface TicketGrant {
  user: User;
  /** Null when the credential has no session (nothing to revoke). */
  sid: string | null;
  caps?: Caps | null;
  /** When the ticket was issued (epoch seconds), for revocation by issue time. */
  iat?: number;
  /**
   * When the credential that asked for the ticket expires (epoch seconds): a socket opened with
   * the ticket is closed then (SPEC §8). Absent or null: that credential does not expire.
   */
  exp?: number | null;
}

export interface TicketStore {
  /** Stores the grant under a fresh unguessable ticket for `ttlS` seconds. */
  issue(grant: TicketGrant, ttlS: number): Promise<string>;
  /** Single use across every machine: the first redeem returns the grant, every later one null. */
  redeem(ticket: string): Promise<TicketGrant | null>;
}

/**
 * A control message that tells every machine of a revocation, published by the store in the same
 * transaction that writes it (one Redis). Behind the revocation fence a machine answers from a kept
 * "not revoked" until it hears of the revocation, so a revocation stored but never announced would
 * not reach it; in one transaction there is never one without the other.
 */
export interface Announcement {
  channel: string;
  message: string;
}

export interface RevocationStore {
  /**
   * Remembers the session id as revoked for `ttlS` seconds (the session's remaining life). Resolves
   * true when `announcement` was published with the write, false when the caller must still send it
   * (a store with no channel to publish on).
   */
  revoke(sid: string, ttlS: number, announcement?: Announcement): Promise<boolean>;
  isRevoked(sid: string): Promise<boolean>;
}

/**
 * Revocation of every credential of a user issued up to a second (SPEC §6 `disconnect` with
 * `revoke`): sessions, tickets, Switchboard tokens and app tokens, judged by their `iat`.
 */
export interface UserRevocationStore {
  /**
   * Refuses, from now on, the user's credentials with `iat` ≤ `atS` (epoch seconds). A later `atS`
   * wins. `announcement` as in RevocationStore.revoke.
   */
  revokeUser(userId: string, atS: number, announcement?: Announcement): Promise<boolean>;
  /** True when a credential of this user issued at `iatS` is refused. */
  isRevoked(userId: string, iatS: number): Promise<boolean>;
  /** Users revoked at `sinceS` or later (epoch seconds), with the second of their latest revoke. */
  revokedSince(sinceS: number): Promise<Map<string, number>>;
}

/**
 * How long a user revocation is kept (90 days, the longest SESSION_TTL_S): every Switchboard
 * credential issued before it has expired by then. An app token living longer than that is the
 * app's choice and is not covered.
 */
export const USER_REVOCATION_RETENTION_S = 90 * 86_400;

export interface AttemptWindow {
  /** Failures counted in the current window. */
  count: number;
  /** Seconds until the window ends (0 when no window is open). */
  resetInS: number;
}

/**
 * Fixed-window attempt counter: the window opens at the first counted attempt and lasts `windowS`.
 * Login counts an attempt before it verifies the password (`fail`) and gives the place back
 * (`release`) when the attempt succeeded or was never verified, so parallel guesses cannot
 * outrun the lockout (SPEC §8).
 */
export interface AttemptCounter {
  get(key: string): Promise<AttemptWindow>;
  fail(key: string, windowS: number): Promise<AttemptWindow>;
  /** Takes back one counted attempt of a window that is still open (never below 0). */
  release(key: string): Promise<void>;
}

/** What refuses a credential: its session's revocation (logout), its user's (by `iat`), or nothing (null). */
export type RevokedBy = "session" | "user" | null;

/**
 * Both revocation checks of one credential — its session's (RevocationStore) and its user's by
 * issue time (UserRevocationStore) — as one question: every handshake asks it, and one entry in
 * the turn's read batch with one promise costs less than two checks joined by `Promise.all`
 * (bench/README.md, round six). Answers as the two stores would, from Redis; a "not revoked" is kept only by the
 * RevocationView above it, behind the revocation fence (auth/revocation-view.ts).
 */
export interface CredentialRevocationStore {
  /** `sid` null: the credential has no session (only its user is checked). */
  revokedBy(sid: string | null, userId: string, iatS: number): Promise<RevokedBy>;
  /** `revokedBy` without a promise when it needs no read (auth/revocation-view.ts); undefined: ask `revokedBy`. */
  revokedByNow?(sid: string | null, userId: string, iatS: number): RevokedBy | undefined;
}

export interface Stores {
  tickets: TicketStore;
  revocations: RevocationStore;
  userRevocations: UserRevocationStore;
  /** `revocations` and `userRevocations` asked together (the same data). */
  credentialRevocations: CredentialRevocationStore;
  attempts: AttemptCounter;
  /**
   * How long the oldest revocation check not sent yet has waited for its read, in ms
   * (stores/revocation-reads.ts): the gateway sheds upgrades on it (gateway/load-guard.ts). Absent
   * where checks do not queue.
   */
  revocationWaitMs?: () => number;
  close(): Promise<void>;
}
