/**
 * The revocation reads of every handshake (a session's ZSCORE and legacy EXISTS, its user's
 * ZSCORE, and the legacy user key's while it is read): those asked in one event-loop turn leave together, as **one** Redis command on one
 * Redis (lua/revocation-reads.lua) and under one deadline timer. Per command, ioredis costs a
 * Command, a promise, timeout timers, a socket write and a reply decode: a handshake's check cost
 * ~26 µs of CPU as three commands, ~9 µs as a share of one call for ~20 handshakes
 * (bench/README.md, round four). ioredis's own auto-pipelining does not batch them: Bun runs
 * `process.nextTick` callbacks after each request, so it flushes once per handshake.
 *
 * A batch holds at most `maxChecks` checks. More asked in one turn (a reconnect storm's wave: every
 * upgrade that queued behind a long turn arrives in the next one) wait, and the next batch leaves
 * only after this one's replies were handled: each batch's upgrades then complete in a turn of their
 * own, with the sockets already connected served in between, instead of one turn opening thousands
 * of sockets at once (bench/README.md, round six). Each read still leaves after it was asked.
 *
 * The call itself is compact (scriptReads): the reads' kinds as one string, one string back.
 * ioredis encodes each argument and decodes each reply element on its own, and in the server those
 * per-element costs (Buffer.byteLength, the RESP decoder) were about as large as all the rest of
 * the batch (bench/README.md, round five).
 *
 * Nothing is answered from memory: each read is sent after it was asked, so a logout that Redis
 * acknowledged before an upgrade arrived is seen by that upgrade's read (auth/revocation-view.ts).
 * On a Redis Cluster the keys live in different slots, so there each read stays its own command
 * (the connection auto-pipelines them per node, and a read refused with a redirection, or cut by
 * the connection a failover closed, is sent again: redis/redirections.ts), and each check is
 * answered by its own reads: a read that fails (its shard's primary dead until its replica is
 * promoted, ~4 s) refuses with `unavailable` only the checks that needed it, where one failed read
 * used to refuse the whole batch, up to 256 upgrades. The batch still shares one deadline: a read
 * still out when it passes fails the checks that need it. A failed read never counts as "not
 * revoked". On one Redis the batch is one command, answered or refused whole.
 */
import { readFileSync } from "node:fs";
import { Cluster } from "ioredis";
import { toSwitchboardError, within, type RedisClient } from "../redis/connection.ts";
import { CLOSED, followRedirections } from "../redis/redirections.ts";

const SCRIPT = readFileSync(new URL("./lua/revocation-reads.lua", import.meta.url), "utf8");

/**
 * Replies, one per read, and where one check's own replies start in them (those of the whole batch
 * on one Redis; on a cluster the check's own, from 0): a ZSCORE's score (a string) or null, an
 * EXISTS's "1" or null.
 */
export type Replies = readonly (string | null)[];
export type Verdict<T> = (replies: Replies, at: number) => T;

/** One check (one to four reads) asked and not answered yet. */
interface Check {
  /** Index of its first read in the batch. */
  at: number;
  verdict: Verdict<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** ioredis flattens array arguments (one `Array.flat` it makes anyway): no spread of the batch here. */
type Scripted = { sbRevocationReads(numKeys: number, keys: readonly string[], ops: string, members: readonly string[]): Promise<string> };

/** A read's member: the ZSCORE member, or EXISTS to ask whether the key exists. */
export type Member = string | typeof EXISTS;
export const EXISTS = null;

/** The reads of one batch, in order. */
interface Reads {
  keys: string[];
  members: Member[];
}

/** Checks (one per handshake: its session's and its user's reads together) in one batch: the upgrades completed in one turn of the loop. */
const MAX_CHECKS = 256;

/** The reads of one batch, in order, the checks they answer, and when its first check was asked (performance.now()). */
interface Batch extends Reads {
  checks: Check[];
  since: number;
}

const newBatch = (): Batch => ({ keys: [], members: [], checks: [], since: 0 });

export class RevocationReader {
  /** Batches not sent yet, oldest first; only the last one takes new checks. */
  private waiting: Batch[] = [newBatch()];
  private scheduled = false;
  /** A batch is out while others wait: the next one leaves once its replies were handled. */
  private held = false;
  private readonly flush = () => {
    this.scheduled = false;
    this.send();
  };

  constructor(
    private readonly redis: RedisClient,
    /** A read without a reply after this long fails (REDIS_COMMAND_TIMEOUT_MS). */
    private readonly deadlineMs: number,
    private readonly maxChecks = MAX_CHECKS,
  ) {
    if (!(redis instanceof Cluster) && !("sbRevocationReads" in redis)) redis.defineCommand("sbRevocationReads", { lua: SCRIPT });
  }

  /**
   * One check: its reads (up to four key, member pairs) go out with the others of this turn, and
   * `verdict` turns their replies into the answer: one promise per check, however many reads.
   * Rejects with `unavailable` when Redis does not answer.
   */
  check<T>(verdict: Verdict<T>, key: string, member: Member, key2?: string, member2?: Member, key3?: string, member3?: Member, key4?: string, member4?: Member): Promise<T> {
    // After every request of this turn of the loop: Bun hands all the upgrades that arrived
    // together to `fetch` before the immediates run.
    this.schedule();
    let batch = this.waiting.at(-1)!;
    if (batch.checks.length >= this.maxChecks) this.waiting.push((batch = newBatch()));
    if (batch.checks.length === 0) batch.since = performance.now();
    const { keys, members } = batch;
    const at = keys.length;
    keys.push(key);
    members.push(member);
    if (key2 !== undefined) {
      keys.push(key2);
      members.push(member2 ?? EXISTS);
    }
    if (key3 !== undefined) {
      keys.push(key3);
      members.push(member3 ?? EXISTS);
    }
    if (key4 !== undefined) {
      keys.push(key4);
      members.push(member4 ?? EXISTS);
    }
    return new Promise<T>((resolve, reject) => batch.checks.push({ at, verdict, resolve: resolve as (value: unknown) => void, reject }));
  }

  /**
   * How long the oldest check not sent yet has waited, in ms (0: none waits): the wait of a check
   * asked now, as far as the queue has shown it, since checks leave in the order they were asked
   * (gateway/load-guard.ts sheds upgrades on it). Observed rather than predicted: in a storm,
   * "batches ahead × the last cycle" measured during the turns that read thousands of arrivals
   * (the turns in which it is asked) said 4–7 s while no check waited more than ~1.2 s
   * (bench/README.md, round seven).
   */
  oldestWaitMs(now = performance.now()): number {
    const oldest = this.waiting[0]!;
    return oldest.checks.length === 0 ? 0 : now - oldest.since;
  }

  private schedule(): void {
    if (this.scheduled || this.held) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  /** Sends the oldest batch; while more wait, the next leaves in the turn after its replies. */
  private send(): void {
    const batch = this.waiting.shift()!;
    if (this.waiting.length === 0) this.waiting.push(newBatch());
    if (batch.checks.length === 0) return;
    const answered = this.redis instanceof Cluster ? this.answerEach(this.redis, batch) : this.answerAll(batch);
    if (this.waiting[0]!.checks.length === 0) return;
    // Only this batch's replies release the next one (a smaller batch sent before it may still be out).
    this.held = true;
    void answered.finally(() => {
      // setImmediate: this batch's upgrades (microtasks of this turn) complete first.
      this.held = false;
      this.schedule();
    });
  }

  /** On one Redis: one script call reads the whole batch, so it answers every check or none. */
  private answerAll({ keys, members, checks }: Batch): Promise<void> {
    const { ops, zscoreMembers } = scriptReads(members);
    const replies = (this.redis as unknown as Scripted).sbRevocationReads(keys.length, keys, ops, zscoreMembers).then(parseReplies);
    return within(replies, this.deadlineMs).then(
      (replies) => {
        for (const check of checks) check.resolve(check.verdict(replies, check.at));
      },
      (error: unknown) => {
        const failure = toSwitchboardError(error, "revocation");
        for (const check of checks) check.reject(failure);
      },
    );
  }

  /**
   * On a cluster: each read is its own command, and each check is answered by its own reads. One
   * read that fails (its shard's primary dead until its replica is promoted, its redirections out
   * of time), or is still out at the batch's deadline, refuses the checks that needed it, not the
   * whole batch: the others were answered, some of them "revoked".
   */
  private answerEach(redis: Cluster, { keys, members, checks }: Batch): Promise<unknown> {
    const read = (key: string, member: Member) =>
      followRedirections<string | null>(redis, async () => (member === EXISTS ? ((await redis.exists(key)) === 1 ? "1" : null) : redis.zscore(key, member)), this.deadlineMs, CLOSED);
    const reads = keys.map((key, i) => read(key, members[i]!));
    const answered = checks.map((check, i) =>
      Promise.all(reads.slice(check.at, checks[i + 1]?.at ?? reads.length)).then(
        (replies) => check.resolve(check.verdict(replies, 0)),
        (error: unknown) => check.reject(toSwitchboardError(error, "revocation")),
      ),
    );
    // The batch's one deadline (one timer): if a read is still out as it passes, the checks not
    // answered by then are refused (one answered before keeps its answer: a promise settles once).
    return within(Promise.all(answered), this.deadlineMs).catch((error: unknown) => {
      const failure = toSwitchboardError(error, "revocation");
      for (const check of checks) check.reject(failure);
    });
  }
}

/** The script's ARGV (lua/revocation-reads.lua): one character per read, then the ZSCORE members. */
export function scriptReads(members: readonly Member[]): { ops: string; zscoreMembers: string[] } {
  const zscoreMembers: string[] = [];
  let ops = "";
  for (const member of members) {
    if (member === EXISTS) ops += "e";
    else {
      ops += "z";
      zscoreMembers.push(member);
    }
  }
  return { ops, zscoreMembers };
}

/** The script's one string back into one reply per read ("" is none). */
export function parseReplies(reply: string): Replies {
  return reply.split("\n").map((r) => (r === "" ? null : r));
}
