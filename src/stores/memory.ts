/** The embedded stores for a single process. Expired entries are dropped lazily and by a sweep. */
import { USER_REVOCATION_RETENTION_S, type AttemptCounter, type AttemptWindow, type CredentialRevocationStore, type RevocationStore, type RevokedBy, type Stores, type TicketGrant, type TicketStore, type UserRevocationStore } from "./stores.ts";

/** 32 random bytes, base64url: an unguessable single-use ticket. */
export function newTicket(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}

/** A map whose entries expire; `sweep()` forgets the expired ones. */
class ExpiringMap<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  constructor(private readonly now: () => number) {}

  get(key: string): { value: V; expiresAt: number } | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  set(key: string, value: V, ttlS: number): void {
    this.entries.set(key, { value, expiresAt: this.now() + ttlS * 1000 });
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  /** Live entries as [key, value]. */
  *live(): IterableIterator<[string, V]> {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt > now) yield [key, entry.value];
  }

  sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }
}

export class MemoryTicketStore implements TicketStore {
  constructor(private readonly map: ExpiringMap<TicketGrant>) {}

  async issue(grant: TicketGrant, ttlS: number): Promise<string> {
    const ticket = newTicket();
    this.map.set(ticket, grant, ttlS);
    return ticket;
  }

  async redeem(ticket: string): Promise<TicketGrant | null> {
    const entry = this.map.get(ticket);
    if (entry === undefined) return null;
    this.map.delete(ticket);
    return entry.value;
  }
}

export class MemoryRevocationStore implements RevocationStore {
  constructor(private readonly map: ExpiringMap<true>) {}

  /** One process: nothing to announce to (false). */
  async revoke(sid: string, ttlS: number): Promise<boolean> {
    this.map.set(sid, true, Math.max(1, ttlS));
    return false;
  }

  async isRevoked(sid: string): Promise<boolean> {
    return this.map.get(sid) !== undefined;
  }
}

export class MemoryUserRevocationStore implements UserRevocationStore {
  constructor(private readonly map: ExpiringMap<number>) {}

  /** One process: nothing to announce to (false). */
  async revokeUser(userId: string, atS: number): Promise<boolean> {
    const previous = this.map.get(userId)?.value ?? -Infinity;
    if (atS > previous) this.map.set(userId, atS, USER_REVOCATION_RETENTION_S);
    return false;
  }

  async isRevoked(userId: string, iatS: number): Promise<boolean> {
    const atS = this.map.get(userId)?.value;
    return atS !== undefined && iatS <= atS;
  }

  async revokedSince(sinceS: number): Promise<Map<string, number>> {
    return new Map([...this.map.live()].filter(([, atS]) => atS >= sinceS));
  }
}

/** Both checks of one credential, on the same maps as the two stores. */
export class MemoryCredentialRevocationStore implements CredentialRevocationStore {
  constructor(
    private readonly sessions: MemoryRevocationStore,
    private readonly users: MemoryUserRevocationStore,
  ) {}

  async revokedBy(sid: string | null, userId: string, iatS: number): Promise<RevokedBy> {
    if (sid !== null && (await this.sessions.isRevoked(sid))) return "session";
    return (await this.users.isRevoked(userId, iatS)) ? "user" : null;
  }
}

export class MemoryAttemptCounter implements AttemptCounter {
  constructor(
    private readonly map: ExpiringMap<number>,
    private readonly now: () => number,
  ) {}

  async get(key: string): Promise<AttemptWindow> {
    const entry = this.map.get(key);
    if (entry === undefined) return { count: 0, resetInS: 0 };
    return { count: entry.value, resetInS: Math.max(1, Math.ceil((entry.expiresAt - this.now()) / 1000)) };
  }

  async fail(key: string, windowS: number): Promise<AttemptWindow> {
    const entry = this.map.get(key);
    if (entry === undefined) {
      this.map.set(key, 1, windowS);
      return { count: 1, resetInS: windowS };
    }
    entry.value += 1;
    return { count: entry.value, resetInS: Math.max(1, Math.ceil((entry.expiresAt - this.now()) / 1000)) };
  }

  async release(key: string): Promise<void> {
    const entry = this.map.get(key);
    if (entry !== undefined && entry.value > 0) entry.value -= 1;
  }
}

export function memoryStores(now: () => number = Date.now): Stores {
  const tickets = new ExpiringMap<TicketGrant>(now);
  const revoked = new ExpiringMap<true>(now);
  const attempts = new ExpiringMap<number>(now);
  const revokedUsers = new ExpiringMap<number>(now);
  const sweeper = setInterval(() => {
    tickets.sweep();
    revoked.sweep();
    revokedUsers.sweep();
    attempts.sweep();
  }, 30_000);
  sweeper.unref?.();
  const revocations = new MemoryRevocationStore(revoked);
  const userRevocations = new MemoryUserRevocationStore(revokedUsers);
  return {
    tickets: new MemoryTicketStore(tickets),
    revocations,
    userRevocations,
    credentialRevocations: new MemoryCredentialRevocationStore(revocations, userRevocations),
    attempts: new MemoryAttemptCounter(attempts, now),
    async close() {
      clearInterval(sweeper);
    },
  };
}
