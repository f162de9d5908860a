/**
 * The keys of the auth stores in Redis (stores/redis.ts, stores/redis-users.ts), the shards of
 * revocations, and what the stores' writes share: errors as `unavailable`, a MULTI's replies, its
 * announcement.
 */
import type { Announcement } from "./stores.ts";
import { toSwitchboardError, type RedisClient } from "../redis/connection.ts";

export const storeKeys = {
  ticket: (ticket: string) => `sb:ticket:${ticket}`,
  /** The only key of versions before dea89a7 (a string with TTL): still written and read, for them. */
  revoked: (sid: string) => `sb:revoked:${sid}`,
  /** The revocations of one shard of session ids; each key its own hash slot on a cluster. */
  revocations: (sid: string) => SHARD_KEYS[shardOf(sid)]!,
  attempts: (key: string) => `sb:attempts:${key}`,
  /** On a cluster, the user revocations of one shard of user ids, in the slot of the session shard of the same number. */
  userRevocations: (userId: string) => USER_SHARD_KEYS[shardOf(userId)]!,
  /** The only user revocation key of versions before rev14, and of one Redis: see stores/redis-users.ts. */
  revokedUsers: "sb:{revocations}:users",
};

export async function guard<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw toSwitchboardError(error, what);
  }
}

/** Runs a MULTI and returns its replies, throwing the first command error. */
export async function exec(multi: ReturnType<RedisClient["multi"]>): Promise<unknown[]> {
  const replies = await multi.exec();
  if (replies === null) throw new Error("transaction aborted");
  for (const [error] of replies) if (error) throw error;
  return replies.map(([, value]) => value);
}

/**
 * The transaction with the announcement's PUBLISH at its end: Redis runs a MULTI as one, so the
 * revocation is never stored without being announced, nor announced without being stored.
 */
export function announced(multi: ReturnType<RedisClient["multi"]>, announcement?: Announcement): ReturnType<RedisClient["multi"]> {
  return announcement === undefined ? multi : multi.publish(announcement.channel, announcement.message);
}

/** Revocations (of sessions, of users) are spread over 16 sorted sets, each its own hash slot on a cluster. */
const REVOCATION_SHARDS = 16;
/** Made once: every handshake names one, and a flat string costs ioredis less to encode than a fresh one. */
const SHARD_KEYS = Array.from({ length: REVOCATION_SHARDS }, (_, shard) => `sb:revocations:{${shard}}`);
/**
 * The same hash tags as the session shards: revocations stay in 16 slots, and one primary down
 * refuses the credentials whose session or user shard it owns (docs/redis.md).
 */
export const USER_SHARD_KEYS = SHARD_KEYS.map((key) => `${key}:users`);

/** A 31-multiplier hash of the id's UTF-16 units, mod 16: stable across versions and processes. */
export function shardOf(sid: string): number {
  let h = 0;
  for (let i = 0; i < sid.length; i++) h = (h * 31 + sid.charCodeAt(i)) >>> 0;
  return h % REVOCATION_SHARDS;
}
