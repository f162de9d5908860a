/**
 * The connection every publish of this process goes over (one connection, so a socket's pipelined
 * publishes reach the ordering point in the order they were made).
 *
 * - One Redis over `redis://`: a RespLink of its own (redis/resp-link.ts). On this path ioredis
 *   cost ~20 µs of CPU and latency per publish more than a lean link (issue 17, round eight). The
 *   broker's other commands (history reads, canaries, control messages) stay on ioredis: a
 *   publish and a history read made one after the other may now reach Redis in either order,
 *   which recovery already handles, since other processes' publishes always came on other
 *   connections (test/publish-link.test.ts checks a socket's publish → subscribe-with-since).
 * - A Cluster, or TLS (`rediss://`, which RespLink does not speak): the broker's ioredis command
 *   connection, as before.
 */
import { errorReporter, type LogFn, type RedisClient } from "../redis/connection.ts";
import { RespLink } from "../redis/resp-link.ts";
import { LIBRARY, SCRIPTS, ScriptRunner, scriptsUnloaded, type ScriptTransport } from "./redis-scripts.ts";
import type { CommandSender } from "./redis-send.ts";
import type { PublishResult } from "./broker.ts";

/** publish.lua's reply, "<seq>:<epoch>:<duplicate>" (an epoch is hex: no colon in it). */
export function publishResult(reply: string): PublishResult {
  const first = reply.indexOf(":");
  const last = reply.lastIndexOf(":");
  return { seq: Number(reply.slice(0, first)), epoch: reply.slice(first + 1, last), duplicate: reply.slice(last + 1) === "1" };
}

export interface PublishPath {
  /** Publishes are refused at once (`unavailable`) while this is false. */
  readonly ready: boolean;
  /** Runs publish.lua. */
  publish(keys: string[], args: (string | number)[]): Promise<PublishResult>;
  /** Resolves when ready or after `waitMs`. Never rejects. */
  started(waitMs: number): Promise<void>;
  /** Every canary interval: an idle link is checked. */
  tick(): void;
  close(): void;
}

export interface PublishPathOptions {
  url: string;
  cluster: boolean;
  name: string;
  commandTimeoutMs: number;
  log: LogFn;
}

/** The broker's ioredis command connection and its ScriptRunner carry the publishes too. */
export function sharedPublishPath(cmd: RedisClient, sender: CommandSender, scripts: ScriptRunner): PublishPath {
  return {
    get ready() {
      return cmd.status === "ready";
    },
    publish: async (keys, args) => publishResult(await sender.send(() => scripts.publish(keys, args))),
    started: async () => {},
    tick: () => {},
    close: () => {},
  };
}

/** RespLink for one Redis over plain TCP; `undefined` where it does not apply (Cluster, TLS, a Unix socket). */
export function linkPublishPath(options: PublishPathOptions): PublishPath | undefined {
  if (options.cluster) return undefined; // its URL may list several seed nodes
  const url = new URL(options.url);
  if (url.protocol !== "redis:" || url.hostname === "") return undefined;
  return new LinkPublishPath(options);
}

/** The two scripts over a RespLink: FCALL, EVALSHA, EVAL (ScriptRunner decides which, and when). */
function linkScripts(link: RespLink): ScriptTransport {
  return {
    fcall: (name, keys, args) => link.send(["FCALL", name, keys.length, ...keys, ...args]),
    evalsha: (which, keys, args) => link.send(["EVALSHA", SCRIPTS[which].sha, keys.length, ...keys, ...args]),
    eval: (which, keys, args) => link.send(["EVAL", SCRIPTS[which].text, keys.length, ...keys, ...args]),
    load: async () => {
      for (const { text } of Object.values(SCRIPTS)) link.send(["SCRIPT", "LOAD", text]).catch(scriptsUnloaded);
      await link.send(["FUNCTION", "LOAD", "REPLACE", LIBRARY]);
      return true;
    },
  };
}

class LinkPublishPath implements PublishPath {
  private readonly link: RespLink;
  private readonly scripts: ScriptRunner;
  private wasReady = false;
  private whenReady: (() => void) | undefined;

  constructor(options: PublishPathOptions) {
    const errors = errorReporter(options.log, "redis publish connection");
    this.link = new RespLink({
      url: options.url,
      name: `${options.name}:publish`,
      commandTimeoutMs: options.commandTimeoutMs,
      onReady: () => {
        errors.reset();
        void this.scripts.load();
        if (this.wasReady) options.log("info", "redis publish connection is back");
        this.wasReady = true;
        this.whenReady?.();
      },
      onDown: () => options.log("warn", "redis publish connection lost: publishing answers unavailable"),
      onError: (error) => errors.report(error),
    });
    this.scripts = new ScriptRunner(linkScripts(this.link));
    this.link.connect();
  }

  get ready(): boolean {
    return this.link.ready;
  }

  publish(keys: string[], args: (string | number)[]): Promise<PublishResult> {
    return this.scripts.publish(keys, args).then(publishResult);
  }

  async started(waitMs: number): Promise<void> {
    if (this.link.ready) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.whenReady = resolve;
      timer = setTimeout(resolve, waitMs);
    });
    clearTimeout(timer);
    this.whenReady = undefined;
  }

  tick(): void {
    this.link.tick();
  }

  close(): void {
    this.link.close();
  }
}
