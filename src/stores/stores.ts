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
}

export interface TicketStore {
  /** Stores the grant under a fresh unguessable ticket for `ttlS` seconds. */
  issue(grant: TicketGrant, ttlS: number): Promise<string>;
  /** Single use across every machine: the first redeem returns the grant, every later one null. */
  redeem(ticket: string): Promise<TicketGrant | null>;
}

export interface RevocationStore {
  /** Remembers the session id as revoked for `ttlS` seconds (the session's remaining life). */
  revoke(sid: string, ttlS: number): Promise<void>;
  isRevoked(sid: string): Promise<boolean>;
}

export interface AttemptWindow {
  /** Failures counted in the current window. */
  count: number;
  /** Seconds until the window ends (0 when no window is open). */
  resetInS: number;
}

/** Fixed-window failure counter: the window opens at the first failure and lasts `windowS`. */
export interface AttemptCounter {
  get(key: string): Promise<AttemptWindow>;
  fail(key: string, windowS: number): Promise<AttemptWindow>;
}

export interface Stores {
  tickets: TicketStore;
  revocations: RevocationStore;
  attempts: AttemptCounter;
  close(): Promise<void>;
}
