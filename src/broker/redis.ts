/**
 * RedisBroker: the Broker of a deployment of many processes (SPEC "Delivery", §7), on one Redis or
 * on a Redis Cluster (`cluster: true`).
 *
 * - One ordering point per topic: lua/publish.lua assigns the next seq, appends the frame to the
 *   topic's history stream, honours the idempotency key and publishes, atomically. The frame is
 *   serialized once, inside the script, from pre-serialized pieces. On a cluster the script runs on
 *   the topic's primary and SPUBLISHes (sharded pub/sub): a publication touches one shard only.
 * - Interest-based delivery: a topic's channel is subscribed only between `subscribe` and
 *   `unsubscribe` (the hub reference-counts); no pattern subscriptions. Which connection carries
 *   which topic is redis-subscriptions.ts; one connection's life is redis-link.ts; what the links
 *   hear becomes BrokerEvents in redis-events.ts.
 *   Publications travel as "p<seq>:<epoch>:<frame>", ephemeral frames as "e<frame>" on the same
 *   channel, so the receiver reads the position without parsing the frame.
 * - Redis pub/sub is at-most-once. Whenever a subscriber link comes back (a drop, a deaf link found
 *   by its canary, a failover or slot migration that moved topics) its topics are resubscribed and
 *   confirmed, and only then reported through `onReconnect(topics)`: the hub re-reads those topics'
 *   history from their last delivered seq.
 * - Redis unreachable: commands fail after `commandTimeoutMs` (never queued, never resent after a
 *   reconnect), so `publish` rejects with `unavailable` instead of a false ack or a late publish.
 */
import type { Cluster } from "ioredis";
import type Redis from "ioredis";
import type { Broker, BrokerEvents, ControlMessage, HistoryPolicy, HistoryResult, Position, Publication, PublishInput, PublishResult } from "./broker.ts";
import { framePrefix, frameSuffix } from "./frame.ts";
import { redisKeys } from "./redis-keys.ts";
import { BrokerEventRouter } from "./redis-events.ts";
import { ioredisScripts, ScriptRunner } from "./redis-scripts.ts";
import { linkPublishPath, sharedPublishPath, type PublishPath } from "./redis-publish.ts";
import { Subscriptions } from "./redis-subscriptions.ts";
import { CommandSender } from "./redis-send.ts";
import { RedisFence } from "./redis-fence.ts";
import { every } from "../shared-clock.ts";
import { closeConnection, connectWithin, createClient, errorReporter, publishError, randomEpoch, toSwitchboardError, unavailable, type LogFn, type RedisClient } from "../redis/connection.ts";

export { redisKeys };

export interface RedisBrokerOptions {
  /** REDIS_URL: one URL, or with `cluster` one or more comma-separated seed nodes. */
  url: string;
  /** Redis Cluster with sharded pub/sub (REDIS_CLUSTER). Default false. */
  cluster?: boolean;
  instanceId: string;
  /** Publications kept per topic for recovery (HISTORY_SIZE). */
  historySize: number;
  /** Seconds a topic's history (and epoch, and idempotency keys) outlive its last publication. */
  historyTtlS: number;
  /** Per topic (its namespace's `history`), when set; otherwise historySize / historyTtlS for all. */
  historyFor?: (topic: string) => HistoryPolicy;
  /** A Redis command without a reply after this long fails with `unavailable` (REDIS_COMMAND_TIMEOUT_MS). Default 500. */
  commandTimeoutMs?: number;
  /** How often each subscriber link publishes a canary to itself. Default 1000. */
  canaryIntervalMs?: number;
  /**
   * REVOCATION_FENCE_MS: on one Redis, the broker offers a ControlFence of this window
   * (redis-fence.ts, auth/revocation-view.ts). 0 or absent: none.
   */
  fenceMs?: number;
  /** A canary not back after this long marks its link deaf. Default 3000. */
  canaryTimeoutMs?: number;
  /** How long `start` waits for Redis before resolving unhealthy (it keeps retrying). Default 3000. */
  startTimeoutMs?: number;
  log?: LogFn;
}

type HistoryReply = [number, string, number, ...string[]];

export class RedisBroker implements Broker {
  private readonly cmd: RedisClient;
  private readonly sender: CommandSender;
  private readonly scripts: ScriptRunner;
  private readonly publishing: PublishPath;
  private readonly subs: Subscriptions;
  private readonly log: LogFn;
  private readonly cluster: boolean;
  private readonly router: BrokerEventRouter;
  readonly fence: RedisFence | undefined;
  /** Stops the canary tick (shared-clock.ts). */
  private stopTick: (() => void) | undefined;
  private canaryFailures = 0;
  /**
   * The command connection was told to reconnect and its socket has not closed yet (a stalled
   * Redis acknowledges nothing: the close can take until ioredis destroys the socket, 2 s). Asking
   * again would only stack close listeners on that socket: one per batch of failed canaries.
   */
  private replacingCmd = false;
  private cmdWasReady = false;
  private cmdUp = false;
  private closed = false;

  constructor(private readonly options: RedisBrokerOptions) {
    this.log = options.log ?? (() => {});
    this.router = new BrokerEventRouter(this.log);
    this.cluster = options.cluster ?? false;
    const commandTimeoutMs = options.commandTimeoutMs ?? 500;
    const name = `switchboard:${options.instanceId}`;
    const errors = errorReporter(this.log, "redis broker connection");
    this.cmd = createClient(options.url, this.cluster, {
      name: `${name}:broker`,
      commandTimeoutMs,
      autoPipelining: this.cluster,
      onError: (error) => errors.report(error),
    });
    this.sender = new CommandSender(this.cmd, this.cluster, commandTimeoutMs);
    this.scripts = new ScriptRunner(ioredisScripts(this.cmd, this.cluster));
    this.publishing =
      linkPublishPath({ url: options.url, cluster: this.cluster, name, commandTimeoutMs, log: this.log }) ??
      sharedPublishPath(this.cmd, this.sender, this.scripts);
    this.cmd.on("ready", () => {
      errors.reset();
      void this.scripts.load();
      if (this.cmdWasReady) this.log("info", "redis broker connection is back");
      this.cmdWasReady = true;
      this.cmdUp = true;
    });
    this.cmd.on("close", () => {
      this.replacingCmd = false;
      if (this.cmdUp && !this.closed) this.log("warn", "redis broker connection lost: publishing answers unavailable");
      this.cmdUp = false;
    });

    // Unique per incarnation, so a restarted process never hears its predecessor's canaries.
    const incarnation = `${options.instanceId}.${randomEpoch().slice(0, 8)}`;
    this.subs = new Subscriptions(
      {
        url: options.url,
        name,
        incarnation,
        commandTimeoutMs,
        canaryTimeoutMs: options.canaryTimeoutMs ?? 3000,
        ...(this.cluster ? { cluster: this.cmd as Cluster } : {}),
      },
      {
        onMessage: (channel, payload) => this.router.message(channel, payload),
        onRestored: (topics) => {
          if (!this.closed) this.router.restored(topics);
        },
        publishCanary: (channel, nonce) => this.publishCanary(channel, nonce),
        warn: (message) => this.log("warn", message),
      },
    );
    this.fence = this.cluster || !(options.fenceMs! > 0) ? undefined : new RedisFence(options.fenceMs!, this.subs, () => {
      if (!this.closed && this.cmd.status === "ready") this.subs.controlTick(Date.now());
    });
  }

  get healthy(): boolean {
    return !this.closed && this.cmd.status === "ready" && this.publishing.ready && this.subs.healthy;
  }

  /** Connects; resolves within `startTimeoutMs` even when Redis is down (it keeps retrying). */
  async start(events: BrokerEvents): Promise<void> {
    this.router.listen(events);
    const waitMs = this.options.startTimeoutMs ?? 3000;
    await Promise.all([connectWithin(this.cmd, waitMs), this.publishing.started(waitMs), this.subs.started(waitMs)]);
    this.stopTick = every(this.options.canaryIntervalMs ?? 1000, () => this.tick());
    this.fence?.start();
  }

  /** Not async: the reply goes on to the publisher through one `then` (issue 17, round nine). */
  publish(topic: string, input: PublishInput): Promise<PublishResult> {
    if (this.closed || !this.publishing.ready) return Promise.reject(unavailable("publish"));
    const key = input.key ?? "";
    const policy = this.historyOf(topic);
    try {
      return this.publishing.publish(
        key === "" ? [redisKeys.meta(topic), redisKeys.log(topic)] : [redisKeys.meta(topic), redisKeys.log(topic), redisKeys.idempotency(topic, key)],
        [key === "" ? "" : "1",
        randomEpoch(),
        policy.size,
        policy.ttlS,
        framePrefix(topic),
        frameSuffix(input),
        redisKeys.channel(topic),
        this.cluster ? "SPUBLISH" : "PUBLISH"],
      ).catch((error: unknown) => Promise.reject(publishError(error)));
    } catch (error) {
      return Promise.reject(publishError(error));
    }
  }

  private historyOf(topic: string): HistoryPolicy {
    return this.options.historyFor?.(topic) ?? { size: this.options.historySize, ttlS: this.options.historyTtlS };
  }

  async broadcast(topic: string, frame: string): Promise<void> {
    if (this.closed || this.cmd.status !== "ready") return;
    await this.publishRaw(redisKeys.channel(topic), `e${frame}`, this.cluster).catch(() => {});
  }

  async sendControl(message: ControlMessage): Promise<void> {
    if (this.closed || this.cmd.status !== "ready") throw unavailable("control message");
    try {
      await this.cmd.publish(redisKeys.control, JSON.stringify(message));
    } catch (error) {
      throw toSwitchboardError(error, "control message");
    }
  }

  async history(topic: string, since?: Position): Promise<HistoryResult> {
    if (this.closed || this.cmd.status !== "ready") throw unavailable("history");
    let reply: HistoryReply;
    const policy = this.historyOf(topic);
    try {
      reply = (await this.sender.send(() => this.scripts.history(
        [redisKeys.meta(topic), redisKeys.log(topic)],
        [randomEpoch(),
        policy.ttlS,
        since === undefined ? "" : since.seq,
        since === undefined ? "" : since.epoch,
        policy.size],
      ))) as HistoryReply;
    } catch (error) {
      throw toSwitchboardError(error, "history");
    }
    const seq = Number(reply[0]);
    const epoch = String(reply[1]);
    const recovered = since !== undefined && Number(reply[2]) === 1;
    const publications: Publication[] = [];
    if (recovered) {
      for (let i = 3; i < reply.length; i++) {
        publications.push({ topic, seq: since.seq + i - 2, epoch, frame: String(reply[i]) });
      }
    }
    return { position: { seq, epoch }, publications, recovered };
  }

  async latestSeq(topic: string): Promise<number> {
    if (this.closed || this.cmd.status !== "ready") throw unavailable("history");
    try {
      const seq = await this.sender.send(() => this.cmd.hget(redisKeys.meta(topic), "seq"));
      return Number(seq ?? 0) || 0;
    } catch (error) {
      throw toSwitchboardError(error, "history");
    }
  }

  /** Idempotent. Resolves once the topic's channel is confirmed subscribed; rejects `unavailable` otherwise. */
  async subscribe(topic: string): Promise<void> {
    if (this.closed) throw unavailable("subscribe");
    try {
      await this.subs.add(topic);
    } catch (error) {
      throw toSwitchboardError(error, "subscribe");
    }
  }

  async unsubscribe(topic: string): Promise<void> {
    if (this.closed) return;
    await this.subs.remove(topic);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopTick?.();
    this.fence?.stop();
    this.router.stop();
    this.subs.close();
    this.publishing.close();
    await closeConnection(this.cmd);
  }

  /** PUBLISH, or SPUBLISH routed to the channel's shard. */
  private publishRaw(channel: string, payload: string, sharded: boolean): Promise<unknown> {
    if (!sharded) {
      this.sender.hold();
      return this.cmd.publish(channel, payload);
    }
    return (this.cmd as Redis).spublish(channel, payload);
  }

  /** Every canary interval, each subscriber link checks its canary (a deaf link is replaced and its topics repaired). */
  private tick(): void {
    if (this.closed) return;
    this.publishing.tick();
    if (this.cmd.status !== "ready") return;
    this.subs.tick(Date.now());
  }

  /**
   * Canaries go out through the command connection, so they watch it too: on one Redis, two
   * consecutive failures make it reconnect (a cluster client replaces node connections itself).
   */
  private async publishCanary(channel: string, nonce: string): Promise<unknown> {
    try {
      const reply = await this.publishRaw(channel, nonce, channel.startsWith("sb:{canary:"));
      this.canaryFailures = 0;
      return reply;
    } catch (error) {
      if (++this.canaryFailures >= 2 && !this.closed && !this.cluster && !this.replacingCmd) {
        this.canaryFailures = 0;
        this.replacingCmd = true;
        this.log("warn", "redis broker connection does not answer: reconnecting");
        (this.cmd as Redis).disconnect(true);
      }
      throw error;
    }
  }
}
