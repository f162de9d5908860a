/**
 * User revocations in Redis (SPEC §6 `disconnect` with `revoke`): a member of a sorted set, one of
 * 16 by user id (`sb:revocations:{<n>}:users`, in the slots of the session shards), user id → the
 * second of its latest revoke (`ZADD GT`), **no TTL** (so `noeviction` and `volatile-*` policies
 * never evict it; `checkEvictionPolicy` warns about `allkeys-*`), pruned of entries past
 * USER_REVOCATION_RETENTION_S by each revoke. On a cluster one primary down refuses only the
 * credentials whose user (or session) shard it owns, where the single key of earlier versions
 * refused every credential of the deployment; that key is still written and read while
 * USER_REVOCATIONS_LEGACY says so (LegacyUsers). docs/redis.md "User revocations".
 *
 * On one Redis the user revocations stay in that single key, whatever USER_REVOCATIONS_LEGACY
 * says: there is one failure domain (Redis down refuses every credential, sharded or not) and one
 * server thread (no key is hotter than the server), so shards would buy nothing; the one key is
 * the layout of every version (no transition, nothing to copy), the handshake's reads stay three
 * (a fourth, for the legacy key during a transition, cost ~8 µs per handshake with the fence off:
 * bench/README.md, rev14), and "revoked since" stays one ZRANGEBYSCORE.
 */
import { Cluster } from "ioredis";
import { USER_REVOCATION_RETENTION_S, type Announcement, type UserRevocationStore } from "./stores.ts";
import type { RedisClient } from "../redis/connection.ts";
import type { Replies, RevocationReader } from "./revocation-reads.ts";
import { USER_SHARD_KEYS, announced, exec, guard, storeKeys } from "./redis-keys.ts";

/** A user revoked at second `atS` (null: never) refuses credentials issued at or before it. */
const revokedAtOrAfter = (atS: string | null, iatS: number): boolean => atS !== null && iatS <= Number(atS);

/**
 * USER_REVOCATIONS_LEGACY: what this version does, on a cluster, with `sb:{revocations}:users`, the
 * one user revocation key of versions before rev14 (docs/redis.md "User revocations"):
 * - "read" (the default): every revoke is written to it too, and every check reads it beside the
 *   user's shard: in a rolling deploy from such a version each side sees the other's revokes;
 * - "write": still written (a rollback to such a version sees every revoke), copied into the
 *   shards once at start, and read only until that copy succeeded: from then on a check reads
 *   its user's shard only, so the key's primary down refuses nothing;
 * - "off": copied at start as with "write", and no longer written.
 */
export type LegacyUsers = "read" | "write" | "off";
export const LEGACY_USERS = storeKeys.revokedUsers;
/** How often the copy of the legacy key is tried again after it failed (Redis not reachable yet). */
const COPY_RETRY_MS = 250;
/** Members per ZADD of the copy. */
const COPY_CHUNK = 500;

export class RedisUserRevocationStore implements UserRevocationStore {
  /** On a cluster: in 16 shards; on one Redis: in the one key of every version. */
  private readonly sharded: boolean;
  /** Whether checks read the legacy key beside the user's shard (on a cluster: always with "read", else until it was copied). */
  readsLegacy: boolean;

  constructor(
    private readonly redis: RedisClient,
    private readonly reads?: RevocationReader,
    private readonly legacy: LegacyUsers = "read",
  ) {
    this.sharded = redis instanceof Cluster;
    this.readsLegacy = this.sharded;
  }

  /** The key that holds the user's revocation. */
  keyOf(userId: string): string {
    return this.sharded ? storeKeys.userRevocations(userId) : LEGACY_USERS;
  }

  /**
   * The legacy key first (while written): a machine of an earlier version hears the announcement,
   * forgets what it kept of the user and reads that key, and must find the revoke there. Then the
   * user's shard with the announcement, in one transaction; each prunes itself past the retention.
   */
  revokeUser(userId: string, atS: number, announcement?: Announcement): Promise<boolean> {
    return guard("revocation", async () => {
      const floor = `(${atS - USER_REVOCATION_RETENTION_S}`;
      if (this.sharded && this.legacy !== "off") await exec(this.redis.multi().zadd(LEGACY_USERS, "GT", atS, userId).zremrangebyscore(LEGACY_USERS, "-inf", floor));
      const key = this.keyOf(userId);
      await exec(announced(this.redis.multi().zadd(key, "GT", atS, userId).zremrangebyscore(key, "-inf", floor), announcement));
      if (this.sharded) this.pruneOthers(key, floor);
      return announcement !== undefined;
    });
  }

  /**
   * Retention for the shards this revoke did not write: housekeeping, not awaited. One that fails
   * (its primary down) keeps entries past the retention, which refuse only credentials that expired.
   */
  private pruneOthers(own: string, floor: string): void {
    for (const key of USER_SHARD_KEYS) if (key !== own) this.redis.zremrangebyscore(key, "-inf", floor).catch(() => {});
  }

  isRevoked(userId: string, iatS: number): Promise<boolean> {
    const key = this.keyOf(userId);
    const legacy = this.readsLegacy;
    if (this.reads !== undefined) {
      const verdict = (replies: Replies, at: number) => userRevokedIn(replies, at, iatS, legacy);
      return legacy ? this.reads.check(verdict, key, userId, LEGACY_USERS, userId) : this.reads.check(verdict, key, userId);
    }
    return guard("revocation", async () => {
      const replies = await Promise.all([this.redis.zscore(key, userId), legacy ? this.redis.zscore(LEGACY_USERS, userId) : null]);
      return userRevokedIn(replies, 0, iatS, legacy);
    });
  }

  /** Every shard (and the legacy key while it is read), each its own ZRANGEBYSCORE; a user's latest revoke wins. One key on one Redis. */
  revokedSince(sinceS: number): Promise<Map<string, number>> {
    return guard("revocation", async () => {
      const keys = !this.sharded ? [LEGACY_USERS] : this.readsLegacy ? [...USER_SHARD_KEYS, LEGACY_USERS] : USER_SHARD_KEYS;
      const out = new Map<string, number>();
      for (const flat of await rangesFrom(this.redis, keys, sinceS)) {
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const atS = Number(flat[i + 1]);
          if (!((out.get(flat[i]!) ?? -Infinity) >= atS)) out.set(flat[i]!, atS);
        }
      }
      return out;
    });
  }

  /**
   * Copies the legacy key's entries within the retention into the shards (ZADD GT: a later revoke
   * already there wins, and copying again changes nothing), then stops reading it. Only with
   * "write" or "off": with "read" a version before rev14 may still write it after any copy.
   */
  async copyLegacy(nowS = Math.floor(Date.now() / 1000)): Promise<void> {
    if (!this.sharded || this.legacy === "read" || !this.readsLegacy) return;
    const flat = (await this.redis.zrangebyscore(LEGACY_USERS, `(${nowS - USER_REVOCATION_RETENTION_S}`, "+inf", "WITHSCORES")) as string[];
    const byShard = new Map<string, (string | number)[]>();
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const key = storeKeys.userRevocations(flat[i]!);
      const args = byShard.get(key) ?? [];
      args.push(Number(flat[i + 1]), flat[i]!);
      byShard.set(key, args);
    }
    const writes: Promise<unknown>[] = [];
    for (const [key, args] of byShard) {
      for (let i = 0; i < args.length; i += 2 * COPY_CHUNK) writes.push(this.redis.zadd(key, "GT", ...args.slice(i, i + 2 * COPY_CHUNK)));
    }
    await Promise.all(writes);
    this.readsLegacy = false;
  }
}

/** The user's revocation at `at` (its shard) and, when `legacy`, the legacy key's at `at + 1`. */
export function userRevokedIn(replies: Replies, at: number, iatS: number, legacy: boolean): boolean {
  return revokedAtOrAfter(replies[at] ?? null, iatS) || (legacy && revokedAtOrAfter(replies[at + 1] ?? null, iatS));
}

/**
 * ZRANGEBYSCORE `sinceS` +inf WITHSCORES of each key: on a cluster each its own command, sent side
 * by side to the keys' primaries; on one Redis (one key) one pipeline. Any that fails fails the
 * whole read (the revocation watch tries again from the same second).
 */
async function rangesFrom(redis: RedisClient, keys: readonly string[], sinceS: number): Promise<string[][]> {
  if (redis instanceof Cluster) return Promise.all(keys.map((key) => redis.zrangebyscore(key, sinceS, "+inf", "WITHSCORES")));
  const pipeline = redis.pipeline();
  for (const key of keys) pipeline.zrangebyscore(key, sinceS, "+inf", "WITHSCORES");
  return (await exec(pipeline)) as string[][];
}

/**
 * With "write" or "off", copies the legacy key into the shards (RedisUserRevocationStore.copyLegacy),
 * trying again every COPY_RETRY_MS until it succeeds; until then checks read the legacy key too.
 * Returns what stops the attempts.
 */
export function copyLegacyUntilDone(users: RedisUserRevocationStore): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const attempt = () => {
    users.copyLegacy().catch(() => {
      if (!stopped) timer = setTimeout(attempt, COPY_RETRY_MS);
    });
  };
  attempt();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

