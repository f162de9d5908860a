/**
 * RedisBroker: the Broker of a deployment of many processes (SPEC "Delivery").
 *
 * - One ordering point per topic: lua/publish.lua assigns the next seq, appends the frame to the
 *   topic's history stream, honours the idempotency key and PUBLISHes, atomically. The frame is
 *   serialized once, inside the script, from pre-serialized pieces.
 * - Interest-based delivery: a dedicated subscriber connection SUBSCRIBEs a topic's channel only
 *   between `subscribe` and `unsubscribe` (the hub reference-counts); no pattern subscriptions.
 *   Publications travel as "p<seq>:<epoch>:<frame>", ephemeral frames as "e<frame>" on the same
 *   channel, so the receiver reads the position without parsing the frame.
 * - Redis pub/sub is at-most-once. Whenever the subscriber connection comes back (after a drop,
 *   or after the liveness canary found it deaf) this broker resubscribes every channel, waits for
 *   Redis to confirm, and only then calls `onReconnect`, so the hub re-reads history for every
 *   topic from its last delivered seq.
 * - Redis unreachable: commands fail after `commandTimeoutMs` (never queued, never resent after a
 *   reconnect), so `publish` rejects with `unavailable` instead of a false ack or a late publish.
 */
import type Redis from "ioredis";
import { readFileSync } from "node:fs";
import type {
  Broker,
  BrokerEvents,
  ControlMessage,
  HistoryResult,
  Position,
  Publication,
  PublishInput,
  PublishResult,
} from "./broker.ts";
import { framePrefix, frameSuffix } from "./frame.ts";
import {
  closeConnection,
  connectWithin,
  createConnection,
  randomEpoch,
  toSwitchboardError,
  unavailable,
  type LogFn,
} from "../redis/connection.ts";

const PUBLISH_LUA = readFileSync(new URL("./lua/publish.lua", import.meta.url), "utf8");
const HISTORY_LUA = readFileSync(new URL("./lua/history.lua", import.meta.url), "utf8");

export interface RedisBrokerOptions {
  url: string;
  instanceId: string;
  /** Publications kept per topic for recovery (HISTORY_SIZE). */
  historySize: number;
  /** Seconds a topic's history (and epoch, and idempotency keys) outlive its last publication. */
  historyTtlS: number;
  /** A Redis command without a reply after this long fails with `unavailable`. Default 500. */
  commandTimeoutMs?: number;
  /** How often the process publishes a canary to itself. Default 1000. */
  canaryIntervalMs?: number;
  /** A canary not back after this long marks the subscriber connection deaf. Default 3000. */
  canaryTimeoutMs?: number;
  /** How long `start` waits for Redis before resolving unhealthy (it keeps retrying). Default 3000. */
  startTimeoutMs?: number;
  log?: LogFn;
}

/** Key and channel names. Every key of a topic shares the hash tag `{topic}` (Redis Cluster). */
export const redisKeys = {
  meta: (topic: string) => `sb:{${topic}}:meta`,
  log: (topic: string) => `sb:{${topic}}:log`,
  idempotency: (topic: string, key: string) => `sb:{${topic}}:key:${key}`,
  channel: (topic: string) => `sb:{${topic}}:ch`,
  control: "sb:control",
  canary: (instance: string) => `sb:canary:${instance}`,
};

const CHANNEL_HEAD = "sb:{";
const CHANNEL_TAIL = "}:ch";

type PublishReply = [number, string, number];
type HistoryReply = [number, string, number, ...string[]];

interface ScriptedRedis extends Redis {
  sbPublish(...args: (string | number)[]): Promise<PublishReply>;
  sbHistory(...args: (string | number)[]): Promise<HistoryReply>;
}

const noEvents: BrokerEvents = {
  onPublication() {},
  onEphemeral() {},
  onControl() {},
  onReconnect() {},
};

export class RedisBroker implements Broker {
  private readonly cmd: ScriptedRedis;
  private readonly sub: Redis;
  private readonly log: LogFn;
  private readonly commandTimeoutMs: number;
  private readonly canaryIntervalMs: number;
  private readonly canaryTimeoutMs: number;
  private readonly canaryChannel: string;
  private events: BrokerEvents = noEvents;
  /** Topics this process wants; the subscriber connection is brought in line on every ready. */
  private readonly topics = new Set<string>();
  /** True once the subscriber's channels were confirmed on its current connection. */
  private subscribed = false;
  private subReadyCount = 0;
  private canaryTimer: ReturnType<typeof setInterval> | undefined;
  /** Canaries Redis accepted, oldest first, until they come back on the subscriber connection. */
  private readonly canariesInFlight: { nonce: number; at: number }[] = [];
  private canarySent = 0;
  private canaryReceived = 0;
  private canaryFailures = 0;
  private cmdWasReady = false;
  private cmdUp = false;
  private closed = false;

  constructor(private readonly options: RedisBrokerOptions) {
    this.log = options.log ?? (() => {});
    this.commandTimeoutMs = options.commandTimeoutMs ?? 500;
    this.canaryIntervalMs = options.canaryIntervalMs ?? 1000;
    this.canaryTimeoutMs = options.canaryTimeoutMs ?? 3000;
    // Unique per incarnation, so a restarted process never hears its predecessor's canaries.
    this.canaryChannel = redisKeys.canary(`${options.instanceId}.${randomEpoch().slice(0, 8)}`);
    const name = `switchboard:${options.instanceId}`;
    let cmdErrorLogged = false;
    this.cmd = createConnection(options.url, {
      name: `${name}:broker`,
      commandTimeoutMs: this.commandTimeoutMs,
      autoPipelining: true,
      onError: (error) => {
        if (!cmdErrorLogged) this.log("warn", `redis broker connection: ${error.message}`);
        cmdErrorLogged = true;
      },
    }) as ScriptedRedis;
    this.cmd.defineCommand("sbPublish", { numberOfKeys: 3, lua: PUBLISH_LUA });
    this.cmd.defineCommand("sbHistory", { numberOfKeys: 2, lua: HISTORY_LUA });
    this.cmd.on("ready", () => {
      cmdErrorLogged = false;
      if (this.cmdWasReady) this.log("info", "redis broker connection is back");
      this.cmdWasReady = true;
      this.cmdUp = true;
    });
    this.cmd.on("close", () => {
      if (this.cmdUp && !this.closed) this.log("warn", "redis broker connection lost: publishing answers unavailable");
      this.cmdUp = false;
    });

    this.sub = createConnection(options.url, {
      name: `${name}:subscriber`,
      commandTimeoutMs: Math.max(this.commandTimeoutMs, 2000),
      onError: () => {},
    });
    this.sub.on("ready", () => void this.onSubscriberReady());
    this.sub.on("close", () => {
      this.subscribed = false;
      this.canariesInFlight.length = 0;
    });
    this.sub.on("message", (channel: string, payload: string) => this.onMessage(channel, payload));
  }

  get healthy(): boolean {
    return !this.closed && this.cmd.status === "ready" && this.sub.status === "ready" && this.subscribed;
  }

  /** Connects both connections; resolves within `startTimeoutMs` even when Redis is down (it keeps retrying). */
  async start(events: BrokerEvents): Promise<void> {
    this.events = events;
    const waitMs = this.options.startTimeoutMs ?? 3000;
    const subscribedOnce = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, waitMs);
      this.whenSubscribed = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    await Promise.all([connectWithin(this.cmd, waitMs), connectWithin(this.sub, waitMs), subscribedOnce]);
    this.whenSubscribed = undefined;
    this.canaryTimer = setInterval(() => this.checkCanary(), this.canaryIntervalMs);
  }

  private whenSubscribed: (() => void) | undefined;

  async publish(topic: string, input: PublishInput): Promise<PublishResult> {
    if (this.closed || this.cmd.status !== "ready") throw unavailable("publish");
    const head = framePrefix(topic);
    const tail = frameSuffix(input);
    const key = input.key ?? "";
    try {
      const [seq, epoch, duplicate] = await this.cmd.sbPublish(
        redisKeys.meta(topic),
        redisKeys.log(topic),
        redisKeys.idempotency(topic, key),
        key === "" ? "" : "1",
        randomEpoch(),
        this.options.historySize,
        this.options.historyTtlS,
        head,
        tail,
        redisKeys.channel(topic),
      );
      return { seq: Number(seq), epoch: String(epoch), duplicate: Number(duplicate) === 1 };
    } catch (error) {
      throw toSwitchboardError(error, "publish");
    }
  }

  async broadcast(topic: string, frame: string): Promise<void> {
    if (this.closed || this.cmd.status !== "ready") return;
    await this.cmd.publish(redisKeys.channel(topic), `e${frame}`).catch(() => {});
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
    try {
      reply = await this.cmd.sbHistory(
        redisKeys.meta(topic),
        redisKeys.log(topic),
        randomEpoch(),
        this.options.historyTtlS,
        since === undefined ? "" : since.seq,
        since === undefined ? "" : since.epoch,
      );
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

  /**
   * Idempotent. While the subscriber connection is down this only records the interest: the
   * channel is subscribed when it is back, and `onReconnect` follows.
   */
  async subscribe(topic: string): Promise<void> {
    if (this.closed || this.topics.has(topic)) return;
    this.topics.add(topic);
    if (this.sub.status !== "ready") return;
    await this.sub.subscribe(redisKeys.channel(topic)).catch(() => {});
  }

  async unsubscribe(topic: string): Promise<void> {
    if (this.closed || !this.topics.delete(topic)) return;
    if (this.sub.status !== "ready") return;
    await this.sub.unsubscribe(redisKeys.channel(topic)).catch(() => {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.canaryTimer);
    this.whenSubscribed?.();
    this.events = noEvents;
    await Promise.all([closeConnection(this.cmd), closeConnection(this.sub)]);
  }

  /** Every (re)connection of the subscriber: subscribe every channel, then report the reconnect. */
  private async onSubscriberReady(): Promise<void> {
    const generation = ++this.subReadyCount;
    const channels = [redisKeys.control, this.canaryChannel, ...[...this.topics].map(redisKeys.channel)];
    try {
      await this.sub.subscribe(...channels);
    } catch (error) {
      if (this.closed) return;
      this.log("warn", `redis subscriber could not resubscribe: ${(error as Error).message}; reconnecting`);
      this.sub.disconnect(true);
      return;
    }
    if (this.closed || generation !== this.subReadyCount || this.sub.status !== "ready") return;
    this.subscribed = true;
    this.canariesInFlight.length = 0;
    if (generation === 1) {
      this.whenSubscribed?.();
      // Topics registered while Redis was unreachable at start have a hub that wants repair too.
      if (this.topics.size === 0) return;
    } else {
      this.log("info", `redis subscriber is back (${this.topics.size} topics resubscribed): repairing from history`);
    }
    this.emit(() => this.events.onReconnect());
  }

  private onMessage(channel: string, payload: string): void {
    if (channel.startsWith(CHANNEL_HEAD) && channel.endsWith(CHANNEL_TAIL)) {
      const topic = channel.slice(CHANNEL_HEAD.length, channel.length - CHANNEL_TAIL.length);
      if (!this.topics.has(topic)) return; // in flight while unsubscribing
      if (payload.charCodeAt(0) === 112 /* p */) {
        const seqEnd = payload.indexOf(":", 1);
        const epochEnd = payload.indexOf(":", seqEnd + 1);
        if (seqEnd < 0 || epochEnd < 0) return;
        const publication: Publication = {
          topic,
          seq: Number(payload.slice(1, seqEnd)),
          epoch: payload.slice(seqEnd + 1, epochEnd),
          frame: payload.slice(epochEnd + 1),
        };
        this.emit(() => this.events.onPublication(publication));
      } else if (payload.charCodeAt(0) === 101 /* e */) {
        const frame = payload.slice(1);
        this.emit(() => this.events.onEphemeral(topic, frame));
      }
      return;
    }
    if (channel === this.canaryChannel) {
      this.canaryReceived = Math.max(this.canaryReceived, Number(payload) || 0);
      return;
    }
    if (channel === redisKeys.control) {
      let message: ControlMessage;
      try {
        message = JSON.parse(payload) as ControlMessage;
      } catch {
        this.log("warn", "ignored a control message that is not JSON");
        return;
      }
      if (message.type === "canary") return;
      this.emit(() => this.events.onControl(message));
    }
  }

  /**
   * The liveness canary: publish to our own canary channel every interval. A canary that Redis
   * accepted but that has not come back within `canaryTimeoutMs` means the subscriber connection
   * claims to be up but is deaf: force it to reconnect (which resubscribes and repairs).
   * Consecutive failures of the command connection force that one to reconnect too.
   */
  private checkCanary(): void {
    if (this.closed || this.cmd.status !== "ready") return;
    const now = Date.now();
    while (this.canariesInFlight.length > 0 && this.canariesInFlight[0]!.nonce <= this.canaryReceived) {
      this.canariesInFlight.shift();
    }
    const oldest = this.canariesInFlight[0];
    if (this.subscribed && oldest !== undefined && now - oldest.at > this.canaryTimeoutMs) {
      this.log("warn", "redis subscriber is deaf (canary not received): reconnecting");
      this.canariesInFlight.length = 0;
      this.subscribed = false;
      this.sub.disconnect(true);
      return;
    }
    if (!this.subscribed) return;
    const nonce = ++this.canarySent;
    this.cmd.publish(this.canaryChannel, String(nonce)).then(
      () => {
        this.canaryFailures = 0;
        // Redis accepted it; it must come back on the subscriber connection.
        if (nonce > this.canaryReceived && this.canariesInFlight.length < 64) {
          this.canariesInFlight.push({ nonce, at: now });
        }
      },
      () => {
        if (++this.canaryFailures >= 2 && !this.closed) {
          this.canaryFailures = 0;
          this.log("warn", "redis broker connection does not answer: reconnecting");
          this.cmd.disconnect(true);
        }
      },
    );
  }

  /** Events run user code; a throwing handler must not break the subscriber's message loop. */
  private emit(call: () => void): void {
    try {
      call();
    } catch (error) {
      this.log("error", `broker event handler threw: ${(error as Error).message}`);
    }
  }
}
