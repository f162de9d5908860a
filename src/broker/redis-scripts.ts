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

type Reply = (string | number)[];
type Which = "publish" | "history";

/** What a ScriptRunner needs of a connection: ioredis's below, or RespLink's (redis-publish.ts). */
export interface ScriptTransport {
  fcall(name: string, keys: string[], args: (string | number)[]): Promise<unknown>;
  /** EVALSHA, and EVAL when the script is not cached. */
  evalsha(which: Which, keys: string[], args: (string | number)[]): Promise<unknown>;
  /** FUNCTION LOAD REPLACE on every primary: true when loaded, false when there are none yet; rejects otherwise. */
  loadLibrary(): Promise<boolean>;
}

interface Scripted {
  sbPublish(...args: (string | number)[]): Promise<string>;
  sbHistory(...args: (string | number)[]): Promise<Reply>;
}

/** The two scripts on an ioredis client (one Redis or a Cluster). */
export function ioredisScripts(client: RedisClient, cluster: boolean): ScriptTransport {
  // The key count varies (the idempotency key only when there is one): see `ScriptRunner.publish`.
  client.defineCommand("sbPublish", { lua: PUBLISH_SCRIPT });
  client.defineCommand("sbHistory", { numberOfKeys: 2, lua: HISTORY_SCRIPT });
  const scripted = client as RedisClient & Scripted;
  return {
    fcall: (name, keys, args) => client.fcall(name, keys.length, ...keys, ...args),
    evalsha: (which, keys, args) => (which === "publish" ? scripted.sbPublish(keys.length, ...keys, ...args) : scripted.sbHistory(...keys, ...args)),
    async loadLibrary() {
      const nodes: Redis[] = cluster ? (client as Cluster).nodes("master") : [client as Redis];
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
   * Order across the fallback. An FCALL that meets a missing library is retried as EVALSHA when its
   * error comes back; a call made in the meantime must not go out before those retries, or a
   * socket's publishes on one topic would get their seqs out of order. So while FCALLs are out and
   * the library is missing, new calls are held until every FCALL out has settled (its retry done),
   * then sent in the order they were made. Only in that window: a held call waits for those (each
   * bounded by the command deadline, its retry too) before its own deadline starts.
   */
  private fcallsOut = 0;
  /** Non-null while calls are held: resolves when the last FCALL out settles. */
  private held: Promise<void> | null = null;
  private releaseHeld: (() => void) | null = null;
  private heldCalls = 0;

  constructor(private readonly transport: ScriptTransport) {}

  /** Loads the library on every primary; call on each (re)connection. Never rejects. */
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
    if (this.held === null) {
      if (this.functions === true) return this.fcall(which, keys, args);
      if (this.fcallsOut === 0) return this.evalsha(which, keys, args);
      this.held = new Promise((resolve) => (this.releaseHeld = resolve));
    }
    this.heldCalls += 1;
    return this.held.then(() => {
      // The last held call lets the next ones go direct: they come after it.
      if (--this.heldCalls === 0) this.held = null;
      return this.evalsha(which, keys, args);
    });
  }

  /**
   * Not an async function: on the hot path (the library loaded, the call answered) the reply goes
   * on with one `then` instead of an async frame's suspension and resumption (issue 17, round nine).
   */
  private fcall(which: Which, keys: string[], args: (string | number)[]): Promise<string | Reply> {
    this.fcallsOut += 1;
    let reply: Promise<unknown>;
    try {
      reply = this.transport.fcall(FUNCTION_NAMES[which], keys, args);
    } catch (error) {
      return this.afterFailedFcall(which, keys, args, error);
    }
    return reply.then(
      (reply) => {
        this.fcallSettled();
        return reply as string | Reply;
      },
      (error: unknown) => this.afterFailedFcall(which, keys, args, error),
    );
  }

  private async afterFailedFcall(which: Which, keys: string[], args: (string | number)[], error: unknown): Promise<string | Reply> {
    try {
      // A primary restarted empty (or a new one) lacks the library: the call did not run.
      if (!/Function not found/i.test((error as Error).message)) throw error;
      this.functions = undefined;
      void this.load();
      return await this.evalsha(which, keys, args);
    } finally {
      this.fcallSettled();
    }
  }

  /** One FCALL out is done (its retry too): held calls go once none is left. */
  private fcallSettled(): void {
    if (--this.fcallsOut === 0 && this.releaseHeld !== null) {
      this.releaseHeld();
      this.releaseHeld = null;
    }
  }

  private evalsha(which: Which, keys: string[], args: (string | number)[]): Promise<string | Reply> {
    return this.transport.evalsha(which, keys, args) as Promise<string | Reply>;
  }

  private async loadEverywhere(): Promise<void> {
    try {
      this.functions = await this.transport.loadLibrary();
    } catch (error) {
      const message = (error as Error).message;
      if (/unknown command|unknown subcommand/i.test(message)) this.functions = false;
      // Otherwise (a node unreachable) stay on EVALSHA; the next reconnection tries again.
    }
  }
}
