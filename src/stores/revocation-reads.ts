/**
 * The revocation reads of every handshake (a session's ZSCORE and legacy EXISTS, its user's
 * ZSCORE): those asked in one event-loop turn leave together, as **one** Redis command on one
 * Redis (lua/revocation-reads.lua) and under one deadline timer. Per command, ioredis costs a
 * Command, a promise, a timeout timer and a reply decode; three per handshake were ~15 % of a
 * handshake's CPU (bench/README.md), and the handshakes of one turn share one now.
 *
 * Nothing is answered from memory: each read is sent after it was asked, so a logout that Redis
 * acknowledged before an upgrade arrived is seen by that upgrade's read (auth/revocation-view.ts).
 * On a Redis Cluster the keys live in different slots, so there each read stays its own command
 * (the connection auto-pipelines them per node); the batch still shares one deadline.
 */
import { readFileSync } from "node:fs";
import { Cluster } from "ioredis";
import { within, type RedisClient } from "../redis/connection.ts";

const SCRIPT = readFileSync(new URL("./lua/revocation-reads.lua", import.meta.url), "utf8");

/** A read asked and not answered yet: a ZSCORE of `member`, or an EXISTS when `member` is null. */
interface Read {
  key: string;
  member: string | null;
  resolve(reply: unknown): void;
  reject(error: unknown): void;
}

type Scripted = { sbRevocationReads(numKeys: number, ...args: string[]): Promise<unknown[]> };

export class RevocationReader {
  private batch: Read[] | null = null;
  private readonly flush = () => this.send();

  constructor(
    private readonly redis: RedisClient,
    /** A read without a reply after this long fails (REDIS_COMMAND_TIMEOUT_MS). */
    private readonly deadlineMs: number,
  ) {
    if (!(redis instanceof Cluster) && !("sbRevocationReads" in redis)) redis.defineCommand("sbRevocationReads", { lua: SCRIPT });
  }

  /** ZSCORE `key` `member`: the score as Redis writes it, or null. */
  score(key: string, member: string): Promise<string | null> {
    return this.ask(key, member) as Promise<string | null>;
  }

  /** EXISTS `key`: 1 or 0. */
  exists(key: string): Promise<number> {
    return this.ask(key, null) as Promise<number>;
  }

  private ask(key: string, member: string | null): Promise<unknown> {
    if (this.batch === null) {
      this.batch = [];
      // After every request of this turn of the loop: Bun hands all the upgrades that arrived
      // together to `fetch` before the immediates run.
      setImmediate(this.flush);
    }
    const batch = this.batch;
    return new Promise((resolve, reject) => batch.push({ key, member, resolve, reject }));
  }

  private send(): void {
    const batch = this.batch!;
    this.batch = null;
    within(this.run(batch), this.deadlineMs).then(
      (replies) => {
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(replies[i]);
      },
      (error: unknown) => {
        for (const read of batch) read.reject(error);
      },
    );
  }

  private run(batch: Read[]): Promise<unknown[]> {
    const { redis } = this;
    if (redis instanceof Cluster) return Promise.all(batch.map((r) => (r.member === null ? redis.exists(r.key) : redis.zscore(r.key, r.member))));
    const args: string[] = new Array(batch.length * 2);
    for (let i = 0; i < batch.length; i++) {
      const read = batch[i]!;
      args[i] = read.key;
      args[batch.length + i] = read.member === null ? "e" : `z${read.member}`;
    }
    return (redis as unknown as Scripted).sbRevocationReads(batch.length, ...args);
  }
}
