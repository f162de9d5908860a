/**
 * How the broker runs lua/publish.lua and lua/history.lua: as Redis Functions where the server has
 * them (Redis 7+, Valkey), as EVALSHA scripts otherwise (Redis 6.2).
 *
 * Both scripts start a new epoch when a topic's meta was written by another primary; they learn the
 * primary they run on from `primaryId()`, its replication id (INFO replication `master_replid`).
 * - As scripts, `primaryId()` runs INFO on every call (measured ~1.5 µs of the publish's cost).
 * - As Functions, the id is read once and kept in the library's closure. That cache cannot go stale
 *   on a node that changes role: a replica never runs these (write) functions, a promoted replica
 *   runs them for the first time with its new id, and a demoted primary that later catches up with
 *   a full resync reloads its libraries from the new primary's RDB (fresh closures, no cache). A
 *   demoted primary that resumed with a partial resync had lost nothing, and the epochs it created
 *   are continued by no one else, so its old id stays correct for them.
 * The library is named after its content's hash, so processes of two versions (a rolling deploy)
 * each load and call their own.
 */
import { readFileSync } from "node:fs";
import type { Cluster } from "ioredis";
import type Redis from "ioredis";
import type { RedisClient } from "../redis/connection.ts";

const PUBLISH = readFileSync(new URL("./lua/publish.lua", import.meta.url), "utf8");
const HISTORY = readFileSync(new URL("./lua/history.lua", import.meta.url), "utf8");

const READ_ID = 'string.match(redis.call("INFO", "replication"), "master_replid:(%x+)")';

export const PUBLISH_SCRIPT = `local function primaryId() return ${READ_ID} end\n${PUBLISH}`;
export const HISTORY_SCRIPT = `local function primaryId() return ${READ_ID} end\n${HISTORY}`;

const VERSION = new Bun.CryptoHasher("sha1").update(PUBLISH + HISTORY).digest("hex").slice(0, 10);
export const FUNCTION_NAMES = { publish: `sb_publish_${VERSION}`, history: `sb_history_${VERSION}` };

export const LIBRARY = `#!lua name=switchboard_${VERSION}
local cachedId
local function primaryId()
  if cachedId == nil then cachedId = ${READ_ID} end
  return cachedId
end
redis.register_function("${FUNCTION_NAMES.publish}", function(KEYS, ARGV)
${PUBLISH}
end)
redis.register_function("${FUNCTION_NAMES.history}", function(KEYS, ARGV)
${HISTORY}
end)
`;

const sha1 = (text: string) => new Bun.CryptoHasher("sha1").update(text).digest("hex");
/** The scripts' text and SHA1, for EVAL and EVALSHA. */
export const SCRIPTS = {
  publish: { text: PUBLISH_SCRIPT, sha: sha1(PUBLISH_SCRIPT) },
  history: { text: HISTORY_SCRIPT, sha: sha1(HISTORY_SCRIPT) },
};

type Reply = (string | number)[];
type Which = "publish" | "history";

/** What a ScriptRunner needs of a connection: ioredis's below, or RespLink's (redis-publish.ts). */
export interface ScriptTransport {
  fcall(name: string, keys: string[], args: (string | number)[]): Promise<unknown>;
  /** EVALSHA: rejects with Redis's NOSCRIPT error when the server does not have the script. */
  evalsha(which: Which, keys: string[], args: (string | number)[]): Promise<unknown>;
  /** EVAL with the script's text (which Redis then keeps for EVALSHA). */
  eval(which: Which, keys: string[], args: (string | number)[]): Promise<unknown>;
  /**
   * On every primary, SCRIPT LOAD of both scripts, then FUNCTION LOAD REPLACE, sent before any
   * call made after: true when the library loaded, false when there are no primaries yet; rejects
   * when the library did not load (whatever became of the scripts).
   */
  load(): Promise<boolean>;
}

/**
 * The two scripts on an ioredis client (one Redis or a Cluster). Not ioredis's `defineCommand`:
 * its own NOSCRIPT → EVAL retry lets a later call overtake the retried one (ScriptRunner's order rule).
 */
export function ioredisScripts(client: RedisClient, cluster: boolean): ScriptTransport {
  return {
    fcall: (name, keys, args) => client.fcall(name, keys.length, ...keys, ...args),
    evalsha: (which, keys, args) => client.evalsha(SCRIPTS[which].sha, keys.length, ...keys, ...args),
    eval: (which, keys, args) => client.eval(SCRIPTS[which].text, keys.length, ...keys, ...args),
    async load() {
      const nodes: Redis[] = cluster ? (client as Cluster).nodes("master") : [client as Redis];
      for (const node of nodes) for (const { text } of Object.values(SCRIPTS)) node.script("LOAD", text).catch(scriptsUnloaded);
      await Promise.all(nodes.map((node) => node.call("FUNCTION", "LOAD", "REPLACE", LIBRARY)));
      return nodes.length > 0;
    },
  };
}

/** Runs the two scripts on a client: Functions when loaded, EVALSHA until then or without them. */
export class ScriptRunner {
  /** undefined: not tried yet; true: loaded on every primary known; false: the server has no Functions. */
  private functions: boolean | undefined;
  private loading: Promise<void> | undefined;
  /**
   * Order across the fallbacks. A call that meets a miss did not run, and is retried when its error
   * comes back: an FCALL without the library (a primary restarted empty, FUNCTION FLUSH) as EVALSHA,
   * an EVALSHA without the script (a restart, SCRIPT FLUSH, a promoted replica, the first calls on a
   * Redis without Functions) as EVAL. A call made in the meantime must not go out before those
   * retries: it would run first (the first retried EVAL, or the FUNCTION LOAD the miss starts, makes
   * every later call succeed), and a socket's publishes on one topic would get their seqs out of
   * order. So from a miss until every call out has settled (its retries done), new calls are held,
   * then sent in the order they were made. The calls out are safe: they reached Redis before any
   * retry, met the same miss, and one connection answers in order, so their retries go out in
   * theirs. Only in that window: a held call waits for those (each bounded by the command deadline,
   * its retry too) before its own deadline starts. Nothing of this runs for an FCALL answered.
   */
  private callsOut = 0;
  /** Non-null from a miss until the last held call went: resolves when the last call out settles. */
  private held: Promise<void> | null = null;
  private releaseHeld: (() => void) | null = null;
  private heldCalls = 0;

  constructor(private readonly transport: ScriptTransport) {}

  /**
   * Loads the library and the scripts on every primary; call on each (re)connection, before any
   * call goes on it. Never rejects.
   *
   * The scripts too, although the held-order rule below keeps order across a NOSCRIPT: that rule
   * sees this process's calls only. After a restart every process of a deployment reconnects, and
   * on a Redis without Functions another's EVAL could load the script between two of our EVALSHAs
   * that went out before the first one's NOSCRIPT came back: the first is retried after the second
   * ran. With the scripts loaded ahead of our first EVALSHA on the connection, none meets NOSCRIPT
   * there. (A SCRIPT FLUSH in the middle of a connection keeps that window: an operator's act.)
   */
  load(): Promise<void> {
    this.loading ??= this.loadEverywhere().finally(() => (this.loading = undefined));
    return this.loading;
  }

  /**
   * `keys` without the idempotency key when there is none: during a slot migration Redis answers
   * TRYAGAIN for as long as some declared keys have moved and others do not exist, and that key
   * usually does not exist.
   */
  publish(keys: string[], args: (string | number)[]): Promise<string> {
    return this.run("publish", keys, args) as Promise<string>;
  }

  history(keys: string[], args: (string | number)[]): Promise<Reply> {
    return this.run("history", keys, args) as Promise<Reply>;
  }

  private run(which: Which, keys: string[], args: (string | number)[]): Promise<string | Reply> {
    if (this.held === null) return this.send(this.functions === true ? "fcall" : "evalsha", which, keys, args);
    this.heldCalls += 1;
    return this.held.then(() => {
      // The last held call lets the next ones go direct: they come after it.
      if (--this.heldCalls === 0) this.held = null;
      return this.send(this.functions === true ? "fcall" : "evalsha", which, keys, args);
    });
  }

  /**
   * Not an async function: on the hot path (the library loaded, the call answered) the reply goes
   * on with one `then` instead of an async frame's suspension and resumption (issue 17, round nine).
   */
  private send(how: "fcall" | "evalsha", which: Which, keys: string[], args: (string | number)[]): Promise<string | Reply> {
    this.callsOut += 1;
    let reply: Promise<unknown>;
    try {
      reply = how === "fcall" ? this.transport.fcall(FUNCTION_NAMES[which], keys, args) : this.transport.evalsha(which, keys, args);
    } catch (error) {
      return this.afterFailure(how, which, keys, args, error);
    }
    return reply.then(
      (reply) => {
        this.settled();
        return reply as string | Reply;
      },
      (error: unknown) => this.afterFailure(how, which, keys, args, error),
    );
  }

  /** A miss (the call did not run) is retried one step down: FCALL as EVALSHA, EVALSHA as EVAL. */
  private async afterFailure(how: "fcall" | "evalsha", which: Which, keys: string[], args: (string | number)[], error: unknown): Promise<string | Reply> {
    try {
      if (how === "fcall") {
        // A primary restarted empty (or a new one, or FUNCTION FLUSH) lacks the library.
        if (!/Function not found/i.test(messageOf(error))) throw error;
        this.missed();
        this.functions = undefined;
        void this.load();
        return await this.send("evalsha", which, keys, args);
      }
      // The server's script cache lacks it.
      if (!messageOf(error).startsWith("NOSCRIPT")) throw error;
      this.missed();
      return (await this.transport.eval(which, keys, args)) as string | Reply;
    } finally {
      this.settled();
    }
  }

  /** A call out met a miss: new calls are held from now until every call out has settled. */
  private missed(): void {
    // Non-null already: holding since an earlier miss (never draining: that ends in the turn of the release).
    if (this.held === null) this.held = new Promise((resolve) => (this.releaseHeld = resolve));
  }

  /** One call out is done (its retry too): held calls go once none is left. */
  private settled(): void {
    if (--this.callsOut === 0 && this.releaseHeld !== null) {
      this.releaseHeld();
      this.releaseHeld = null;
      if (this.heldCalls === 0) this.held = null;
    }
  }

  private async loadEverywhere(): Promise<void> {
    try {
      this.functions = await this.transport.load();
    } catch (error) {
      const message = (error as Error).message;
      if (/unknown command|unknown subcommand/i.test(message)) this.functions = false;
      // Otherwise (a node unreachable) stay on EVALSHA; the next reconnection tries again.
    }
  }
}

const messageOf = (error: unknown): string => String((error as Error | undefined)?.message ?? error);

/**
 * A SCRIPT LOAD that failed loses nothing: the EVALSHAs after it meet NOSCRIPT and are retried as
 * EVAL, in order (ScriptRunner). The connection's own error, if any, is reported where it is kept.
 */
export const scriptsUnloaded = (): void => {};
