/**
 * The revocation reads of every handshake (a session's ZSCORE and legacy EXISTS, its user's
 * ZSCORE): those asked in one event-loop turn leave together, as **one** Redis command on one
 * Redis (lua/revocation-reads.lua) and under one deadline timer. Per command, ioredis costs a
 * Command, a promise, timeout timers, a socket write and a reply decode: a handshake's check cost
 * ~26 µs of CPU as three commands, ~9 µs as a share of one call for ~20 handshakes
 * (bench/README.md, round four). ioredis's own auto-pipelining does not batch them: Bun runs
 * `process.nextTick` callbacks after each request, so it flushes once per handshake.
 *
 * Nothing is answered from memory: each read is sent after it was asked, so a logout that Redis
 * acknowledged before an upgrade arrived is seen by that upgrade's read (auth/revocation-view.ts).
 * On a Redis Cluster the keys live in different slots, so there each read stays its own command
 * (the connection auto-pipelines them per node, and a read refused with a redirection, or cut by
 * the connection a failover closed, is sent again: redis/redirections.ts); the batch still shares
 * one deadline.
 */
import { readFileSync } from "node:fs";
import { Cluster } from "ioredis";
import { toSwitchboardError, within, type RedisClient } from "../redis/connection.ts";
import { CLOSED, followRedirections } from "../redis/redirections.ts";

const SCRIPT = readFileSync(new URL("./lua/revocation-reads.lua", import.meta.url), "utf8");

/** The replies of a whole batch, and where one check's own replies start in it. */
export type Verdict<T> = (replies: readonly unknown[], at: number) => T;

/** One check (one or two reads) asked and not answered yet. */
interface Check {
  /** Index of its first read in the batch. */
  at: number;
  verdict: Verdict<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Scripted = { sbRevocationReads(numKeys: number, ...args: string[]): Promise<unknown[]> };

/** A read: ZSCORE of `op.slice(1)` when `op` starts with "z", EXISTS when `op` is "e" (the script's encoding). */
export const zscore = (member: string) => `z${member}`;
export const EXISTS = "e";

export class RevocationReader {
  private keys: string[] = [];
  private ops: string[] = [];
  private checks: Check[] = [];
  private readonly flush = () => this.send();

  constructor(
    private readonly redis: RedisClient,
    /** A read without a reply after this long fails (REDIS_COMMAND_TIMEOUT_MS). */
    private readonly deadlineMs: number,
  ) {
    if (!(redis instanceof Cluster) && !("sbRevocationReads" in redis)) redis.defineCommand("sbRevocationReads", { lua: SCRIPT });
  }

  /**
   * One check: its reads (key, op; key, op) go out with the others of this turn, and `verdict`
   * turns their replies into the answer. Rejects with `unavailable` when Redis does not answer.
   */
  check<T>(verdict: Verdict<T>, key: string, op: string, key2?: string, op2?: string): Promise<T> {
    if (this.checks.length === 0) {
      // After every request of this turn of the loop: Bun hands all the upgrades that arrived
      // together to `fetch` before the immediates run.
      setImmediate(this.flush);
    }
    const at = this.keys.length;
    this.keys.push(key);
    this.ops.push(op);
    if (key2 !== undefined) {
      this.keys.push(key2);
      this.ops.push(op2!);
    }
    return new Promise<T>((resolve, reject) => this.checks.push({ at, verdict, resolve: resolve as (value: unknown) => void, reject }));
  }

  private send(): void {
    const { keys, ops, checks } = this;
    this.keys = [];
    this.ops = [];
    this.checks = [];
    within(this.run(keys, ops), this.deadlineMs).then(
      (replies) => {
        for (const check of checks) check.resolve(check.verdict(replies, check.at));
      },
      (error: unknown) => {
        const failure = toSwitchboardError(error, "revocation");
        for (const check of checks) check.reject(failure);
      },
    );
  }

  private run(keys: string[], ops: string[]): Promise<readonly unknown[]> {
    const { redis } = this;
    if (redis instanceof Cluster) {
      const read = (key: string, op: string) => followRedirections<unknown>(redis, () => (op === EXISTS ? redis.exists(key) : redis.zscore(key, op.slice(1))), CLOSED);
      return Promise.all(keys.map((key, i) => read(key, ops[i]!)));
    }
    return (redis as unknown as Scripted).sbRevocationReads(keys.length, ...keys, ...ops);
  }
}
