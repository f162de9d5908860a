/**
 * The auth layer's stores in Redis, shared by every machine of a deployment:
 * - tickets: `SET NX EX` at issue, `GETDEL` at redemption, so a ticket works once across all machines;
 * - revocations: a member of a sorted set (one of 16, by session id), scored with its expiry and
 *   pruned by the server. The sets have no TTL, so a Redis that evicts volatile keys
 *   (`volatile-*` policies) never drops one and a logged-out session never comes back (SPEC §8);
 *   only `allkeys-*` policies could, which the README rules out;
 * - user revocations: in stores/redis-users.ts (on a cluster 16 sorted sets by user id, no TTL,
 *   the one key of versions before rev14 beside them while USER_REVOCATIONS_LEGACY says so; on
 *   one Redis that one key);
 * - attempts: a fixed window that opens at the first failure (`SET NX EX` then `INCR`, in one
 *   MULTI, so the window never restarts while it runs); `release` decrements inside the window only.
 * A Redis failure surfaces as SwitchboardError `unavailable` (see redis/connection.ts).
 * Every command and MULTI touches one key, so the stores run unchanged on Redis Cluster.
 */
import type { Announcement, AttemptCounter, AttemptWindow, CredentialRevocationStore, RevocationStore, RevokedBy, Stores, TicketGrant, TicketStore } from "./stores.ts";
import type { RedisClient } from "../redis/connection.ts";
import { EXISTS, type Replies, type RevocationReader } from "./revocation-reads.ts";
import { newTicket } from "./memory.ts";
import { announced, exec, guard, storeKeys } from "./redis-keys.ts";
import { LEGACY_USERS, RedisUserRevocationStore, copyLegacyUntilDone, userRevokedIn, type LegacyUsers } from "./redis-users.ts";

export { storeKeys };
export { RedisUserRevocationStore, type LegacyUsers };

export class RedisTicketStore implements TicketStore {
  constructor(private readonly redis: RedisClient) {}

  issue(grant: TicketGrant, ttlS: number): Promise<string> {
    return guard("ticket", async () => {
      for (;;) {
        const ticket = newTicket();
        const ok = await this.redis.set(storeKeys.ticket(ticket), JSON.stringify(grant), "EX", Math.max(1, ttlS), "NX");
        if (ok === "OK") return ticket; // a collision of 256 random bits never happens, but NX makes sure
      }
    });
  }

  redeem(ticket: string): Promise<TicketGrant | null> {
    return guard("ticket", async () => {
      const value = await this.redis.getdel(storeKeys.ticket(ticket));
      return value === null ? null : (JSON.parse(value) as TicketGrant);
    });
  }
}

/**
 * The checks of every handshake (a session's and a user's revocation) read, by default, from the
 * data connection, one command per read; with a RevocationReader (redis/services.ts) the reads of
 * one turn of the event loop leave together on a connection of their own (stores/revocation-reads.ts).
 */
export class RedisRevocationStore implements RevocationStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly reads?: RevocationReader,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Adds the session with its expiry, and drops the shard's revocations that ended; publishes
   * `announcement` with them. The legacy key is written too, for as long as it is read: a machine
   * of a version before dea89a7 still running in a rolling deploy reads only that key, and must
   * refuse the session from the moment this logout answered like every other machine.
   */
  revoke(sid: string, ttlS: number, announcement?: Announcement): Promise<boolean> {
    return guard("revocation", async () => {
      const key = storeKeys.revocations(sid);
      const now = this.now();
      const lifeS = Math.max(1, Math.ceil(ttlS));
      const multi = this.redis.multi().zadd(key, now + lifeS * 1000, sid).zremrangebyscore(key, "-inf", now);
      // Two commands, not one transaction: on a cluster the legacy key has a slot of its own.
      await Promise.all([exec(announced(multi, announcement)), this.redis.set(storeKeys.revoked(sid), "1", "EX", lifeS)]);
      return announcement !== undefined;
    });
  }

  isRevoked(sid: string): Promise<boolean> {
    if (this.reads !== undefined) return this.reads.check(this.revokedIn, storeKeys.revocations(sid), sid, storeKeys.revoked(sid), EXISTS);
    return guard("revocation", async () => {
      const [until, legacy] = await Promise.all([this.redis.zscore(storeKeys.revocations(sid), sid), this.redis.exists(storeKeys.revoked(sid))]);
      return this.revokedIn([until, legacy === 1 ? "1" : null], 0);
    });
  }

  /** The session's revocation (its expiry, ms) and whether the legacy key exists, at `at` and `at + 1`. */
  readonly revokedIn = (replies: Replies, at: number): boolean => {
    const until = replies[at] ?? null;
    return (replies[at + 1] ?? null) !== null || (until !== null && Number(until) > this.now());
  };
}

/**
 * A credential's two checks together: with a RevocationReader its session's two reads and its
 * user's one (two while the legacy key is read) are one entry of the turn's batch (one promise,
 * one verdict); without, the stores' own reads side by side.
 */
export class RedisCredentialRevocationStore implements CredentialRevocationStore {
  constructor(
    private readonly sessions: RedisRevocationStore,
    private readonly users: RedisUserRevocationStore,
    private readonly reads?: RevocationReader,
  ) {}

  revokedBy(sid: string | null, userId: string, iatS: number): Promise<RevokedBy> {
    const { reads, sessions } = this;
    if (reads === undefined || sid === null) return this.apart(sid, userId, iatS);
    const legacy = this.users.readsLegacy;
    const verdict = (replies: Replies, at: number): RevokedBy => (sessions.revokedIn(replies, at) ? "session" : userRevokedIn(replies, at + 2, iatS, legacy) ? "user" : null);
    const sessionKey = storeKeys.revocations(sid);
    const userKey = this.users.keyOf(userId);
    return legacy
      ? reads.check(verdict, sessionKey, sid, storeKeys.revoked(sid), EXISTS, userKey, userId, LEGACY_USERS, userId)
      : reads.check(verdict, sessionKey, sid, storeKeys.revoked(sid), EXISTS, userKey, userId);
  }

  private async apart(sid: string | null, userId: string, iatS: number): Promise<RevokedBy> {
    const [session, user] = await Promise.all([sid !== null && this.sessions.isRevoked(sid), this.users.isRevoked(userId, iatS)]);
    return session ? "session" : user ? "user" : null;
  }
}

/**
 * Warns when Redis may evict keys without TTL (`maxmemory-policy allkeys-*`): revocations would
 * no longer be safe from memory pressure. Managed Redis that hides CONFIG is not judged.
 */
export async function checkEvictionPolicy(redis: RedisClient, log: (level: "warn" | "error", message: string) => void): Promise<void> {
  let policy: string | undefined;
  try {
    const reply = (await redis.call("CONFIG", "GET", "maxmemory-policy")) as string[] | Record<string, string>;
    policy = Array.isArray(reply) ? reply[1] : reply["maxmemory-policy"];
  } catch {
    return;
  }
  if (policy?.startsWith("allkeys-")) {
    log("error", `Redis maxmemory-policy is ${policy}: under memory pressure Redis may evict revocations, and a revoked user or session could come back; use noeviction or a volatile-* policy`);
  }
}

export class RedisAttemptCounter implements AttemptCounter {
  constructor(private readonly redis: RedisClient) {}

  get(key: string): Promise<AttemptWindow> {
    return guard("attempts", async () => {
      const [value, ttl] = await exec(this.redis.multi().get(storeKeys.attempts(key)).pttl(storeKeys.attempts(key)));
      const count = Number(value ?? 0);
      const pttl = Number(ttl);
      if (count === 0 || pttl <= 0) return { count: 0, resetInS: 0 };
      return { count, resetInS: Math.max(1, Math.ceil(pttl / 1000)) };
    });
  }

  fail(key: string, windowS: number): Promise<AttemptWindow> {
    return guard("attempts", async () => {
      const k = storeKeys.attempts(key);
      const [, value, ttl] = await exec(this.redis.multi().set(k, "0", "EX", Math.max(1, windowS), "NX").incr(k).pttl(k));
      const count = Number(value);
      const pttl = Number(ttl);
      return { count, resetInS: Math.max(1, Math.ceil(pttl / 1000)) };
    });
  }

  release(key: string): Promise<void> {
    return guard("attempts", async () => {
      // A plain DECR on a window that just expired would create a key without a TTL.
      await this.redis.eval(RELEASE_SCRIPT, 1, storeKeys.attempts(key));
    });
  }
}

/** KEYS[1]: an attempts key. Decrements it only while it exists and is above 0 (its TTL stays). */
const RELEASE_SCRIPT = `if (tonumber(redis.call('GET', KEYS[1]) or '0') > 0) then return redis.call('DECR', KEYS[1]) end return 0`;

/**
 * The stores on one connection (one Redis or a cluster). With `legacyUsers` "write" or "off" the
 * legacy user key is copied into the shards in the background until that succeeded; `close()`
 * stops that, and nothing else (the caller owns the connection).
 */
export function redisStores(redis: RedisClient, reads?: RevocationReader, legacyUsers: LegacyUsers = "read"): Stores {
  const revocations = new RedisRevocationStore(redis, reads);
  const userRevocations = new RedisUserRevocationStore(redis, reads, legacyUsers);
  const stopCopy = legacyUsers === "read" ? () => {} : copyLegacyUntilDone(userRevocations);
  return {
    tickets: new RedisTicketStore(redis),
    revocations,
    userRevocations,
    credentialRevocations: new RedisCredentialRevocationStore(revocations, userRevocations, reads),
    attempts: new RedisAttemptCounter(redis),
    ...(reads && { revocationWaitMs: () => reads.oldestWaitMs() }),
    async close() {
      stopCopy();
    },
  };
}
