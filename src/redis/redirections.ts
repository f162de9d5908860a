/**
 * Runs a Redis Cluster command again when the cluster refused it with a redirection (MOVED, ASK,
 * TRYAGAIN: it did not run), or ioredis did before sending it (below). ioredis follows
 * redirections itself, except in an auto-pipeline whose commands were refused for different slots
 * — what every auto-pipelined connection sees after a failover moved a shard's slots, until its
 * slot map is refreshed. A read (safe to run
 * twice) also passes `CLOSED`: a failover drops the client's connection to the demoted primary,
 * failing what was in flight on it.
 *
 * Attempts go on until the caller's deadline (REDIS_COMMAND_TIMEOUT_MS) is spent, the whole and
 * each attempt bounded by it, spaced by a backoff (10 ms, doubling, at most 100 ms). Before each
 * one the slot map is made newer than the attempt that was refused: when no refresh ended after
 * that attempt was sent, one is asked for and awaited (within the deadline). ioredis runs one
 * refresh at a time: `refreshSlotsCache` called while one runs only joins it, and that one may have
 * read the map before the failover. So a refusal after a refresh asks for another, and a map that
 * is slow to settle (a refresh that failed, a node that answered with the old map, a loaded
 * machine) costs a wait, not a 503, as long as the deadline allows; before, three attempts within
 * ~150 ms refused whatever took longer (the cause of a rare "20 of 20 upgrades refused" right
 * after a CLUSTER FAILOVER in test/redis-cluster-faults.test.ts).
 */
import type { Cluster } from "ioredis";

/**
 * Refusals of a command that did not run: the cluster's redirections, and ioredis's own refusal of
 * an auto-pipeline whose keys were grouped for one node by the slot map of when they were queued
 * and no longer are by the map of when it is sent (a refresh came in between: seen right after a
 * failover, every time the refreshed map arrived with reads waiting).
 */
const REDIRECTION = /^(MOVED|ASK|TRYAGAIN) |^All keys in the pipeline should belong to the same slots allocation group/;
/** ioredis's rejection of a command in flight on a node connection that closed. */
export const CLOSED = /^Connection is closed/;

const FIRST_PAUSE_MS = 10;
const MAX_PAUSE_MS = 100;
/** An attempt with less time than this left is not made (it could only time out). */
const MIN_ATTEMPT_MS = 10;

/**
 * `run` gets the time left to the deadline (ms), to bound its attempt with; `deadlineMs` is the
 * caller's whole budget, counted from this call. The last refusal is rethrown when no time is left.
 */
export async function followRedirections<T>(cluster: Cluster, run: (leftMs: number) => Promise<T>, deadlineMs: number, alsoRetry?: RegExp): Promise<T> {
  const end = performance.now() + deadlineMs;
  for (let attempt = 1; ; attempt++) {
    const sentAt = performance.now();
    try {
      return await run(end - sentAt);
    } catch (error) {
      const message = (error as Error).message;
      if (!(REDIRECTION.test(message) || alsoRetry?.test(message))) throw error;
      const pause = Math.min(FIRST_PAUSE_MS * 2 ** (attempt - 1), MAX_PAUSE_MS);
      if (end - performance.now() < pause + MIN_ATTEMPT_MS) throw error;
      await Promise.all([Bun.sleep(pause), refreshedSince(cluster, sentAt, end)]);
      if (end - performance.now() < MIN_ATTEMPT_MS) throw error;
    }
  }
}

/** When each cluster's slot map was last refreshed (performance.now()), from its `refresh` events. */
const refreshedAt = new WeakMap<Cluster, number>();

function lastRefresh(cluster: Cluster): number {
  const at = refreshedAt.get(cluster);
  if (at !== undefined) return at;
  refreshedAt.set(cluster, -Infinity);
  cluster.on("refresh", () => refreshedAt.set(cluster, performance.now()));
  return -Infinity;
}

/** Resolves once the slot map was refreshed after `since` (asking for a refresh if needed), or at `end`. */
function refreshedSince(cluster: Cluster, since: number, end: number): Promise<void> {
  if (lastRefresh(cluster) > since) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, end - performance.now()));
    // Called back when the refresh ends, failed or not (a failed one: the next refusal asks again).
    cluster.refreshSlotsCache(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
