/**
 * The auth layer's stores in Redis, shared by every machine of a deployment:
 * - tickets: `SET NX EX` at issue, `GETDEL` at redemption, so a ticket works once across all machines;
 * - revocations: `SET EX` for the session's remaining life;
 * - attempts: a fixed window that opens at the first failure (`SET NX EX` then `INCR`, in one
 *   MULTI, so the window never restarts while it runs).
 * A Redis failure surfaces as SwitchboardError `unavailable` (see redis/connection.ts).
 */
import type Redis from "ioredis";
import type { AttemptCounter, AttemptWindow, RevocationStore, Stores, TicketGrant, TicketStore } from "./stores.ts";
import { toSwitchboardError } from "../redis/connection.ts";
import { newTicket } from "./memory.ts";

export const storeKeys = {
  ticket: (ticket: string) => `sb:ticket:${ticket}`,
  revoked: (sid: string) => `sb:revoked:${sid}`,
  attempts: (key: string) => `sb:attempts:${key}`,
};

async function guard<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw toSwitchboardError(error, what);
  }
}

/** Runs a MULTI and returns its replies, throwing the first command error. */
async function exec(multi: ReturnType<Redis["multi"]>): Promise<unknown[]> {
  const replies = await multi.exec();
  if (replies === null) throw new Error("transaction aborted");
  for (const [error] of replies) if (error) throw error;
  return replies.map(([, value]) => value);
}

export class RedisTicketStore implements TicketStore {
  constructor(private readonly redis: Redis) {}

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

export class RedisRevocationStore implements RevocationStore {
  constructor(private readonly redis: Redis) {}

  revoke(sid: string, ttlS: number): Promise<void> {
    return guard("revocation", async () => {
      await this.redis.set(storeKeys.revoked(sid), "1", "EX", Math.max(1, Math.ceil(ttlS)));
    });
  }

  isRevoked(sid: string): Promise<boolean> {
    return guard("revocation", async () => (await this.redis.exists(storeKeys.revoked(sid))) === 1);
  }
}

export class RedisAttemptCounter implements AttemptCounter {
  constructor(private readonly redis: Redis) {}

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
}

/** The three stores on one connection; `close()` is a no-op (the caller owns the connection). */
export function redisStores(redis: Redis): Stores {
  return {
    tickets: new RedisTicketStore(redis),
    revocations: new RedisRevocationStore(redis),
    attempts: new RedisAttemptCounter(redis),
    async close() {},
  };
}
