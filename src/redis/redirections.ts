/**
 * Runs a Redis Cluster command again when the cluster refused it with a redirection (MOVED, ASK,
 * TRYAGAIN: it did not run). ioredis follows redirections itself, except in an auto-pipeline
 * whose commands were refused for different slots — what every auto-pipelined connection sees
 * for a moment after a failover moved a shard's slots (its slot map is stale until refreshed).
 * At most three attempts, the slot map refreshed after the first refusal; the caller's deadline
 * still bounds the whole. A read (safe to run twice) also passes `CLOSED`: a failover drops the
 * client's connection to the demoted primary, failing what was in flight on it.
 */
import type { Cluster } from "ioredis";

const REDIRECTION = /^(MOVED|ASK|TRYAGAIN) /;
/** ioredis's rejection of a command in flight on a node connection that closed. */
export const CLOSED = /^Connection is closed/;

export async function followRedirections<T>(cluster: Cluster, run: () => Promise<T>, alsoRetry?: RegExp): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      const message = (error as Error).message;
      if (attempt >= 3 || !(REDIRECTION.test(message) || alsoRetry?.test(message))) throw error;
      if (attempt === 1) cluster.refreshSlotsCache();
      await Bun.sleep(50 * attempt);
    }
  }
}
