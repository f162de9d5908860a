/**
 * One subscriber connection to one Redis node, and the topics it carries.
 *
 * - `plain` links SUBSCRIBE (one Redis, or the control channel on a cluster); `sharded` links
 *   SSUBSCRIBE the topics whose slots their node owns, one call per slot (a call may not span slots).
 * - Every (re)connection subscribes everything wanted, waits for Redis to confirm, and only then
 *   reports the link's topics as `restored`: pub/sub is at-most-once, so whatever was published while
 *   the link was down must be re-read from history, for this link's topics only.
 * - A canary published every interval to a channel this link carries must come back within the
 *   timeout, otherwise the link is deaf (up, but not delivering) and is replaced.
 * - A subscribe that Redis refuses or does not confirm rejects: the caller was promised delivery
 *   once it resolves.
 * - The canaries also date what the link has heard (`heardUpTo`): a canary sent at t and heard back
 *   means every message Redis took before t has been handed on, because one Redis delivers to a
 *   connection in the order it ran the PUBLISHes (the revocation fence, auth/revocation-view.ts).
 */
import { slotOf } from "../redis/slot.ts";
import { redisKeys } from "./redis-keys.ts";
import { subscriberConnection, type LinkMode, type SubscriberConnection } from "./redis-subscriber.ts";

export interface LinkHost {
  onMessage(channel: string, payload: string): void;
  /** The link (re)subscribed after a loss: these topics may have missed publications. */
  onRestored(topics: string[]): void;
  /** Redis told this sharded link that a channel moved away (a slot migration), or refused one with MOVED. */
  onMoved(): void;
  /** Sends a canary to `channel` through the command connection; resolves once Redis accepted it. */
  publishCanary(channel: string, nonce: string): Promise<unknown>;
  warn(message: string): void;
}

export interface LinkOptions {
  url: string;
  name: string;
  mode: LinkMode;
  commandTimeoutMs: number;
  /** Channels carried besides the topics (the control channel). */
  extraChannels: string[];
  /** The canary channel: one this link's node carries (for sharded links, a slot the node owns). */
  canaryChannel: string;
  canaryTimeoutMs: number;
}

export class SubscriberLink {
  readonly topics = new Set<string>();
  private readonly conn: SubscriberConnection;
  private canaryChannel: string;
  /** True once everything wanted was confirmed on the current connection. */
  private subscribed = false;
  private generation = 0;
  private everSubscribed = false;
  private readonly inFlight: { nonce: number; at: number }[] = [];
  /** When each canary not yet heard back was sent (performance.now()), oldest first. */
  private readonly sentAt = new Map<number, number>();
  /** performance.now() at which the newest canary heard back in this continuity was sent. */
  private heardUpToMs = -Infinity;
  /** Changes whenever messages may have been missed: each loss of the connection, each (re)subscribe. */
  private continuityId = 0;
  private sent = 0;
  private received = 0;
  private closed = false;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private firstReady: (() => void) | undefined;
  readonly whenFirstSubscribed: Promise<void>;

  constructor(
    private readonly options: LinkOptions,
    private readonly host: LinkHost,
  ) {
    this.canaryChannel = options.canaryChannel;
    this.whenFirstSubscribed = new Promise((resolve) => (this.firstReady = resolve));
    const { url, name, mode } = options;
    this.conn = subscriberConnection({ url, name, mode, commandTimeoutMs: Math.max(options.commandTimeoutMs, 2000) }, {
      onReady: () => void this.onReady(),
      onClose: () => {
        if (this.subscribed) this.downSince = Date.now();
        this.subscribed = false;
        this.inFlight.length = 0;
        this.broken();
      },
      onMessage: (channel, payload) => this.onPayload(channel, payload),
      onMoved: () => this.host.onMoved(),
    });
  }

  /** Since when the link has not been subscribed (0 while it is). */
  private downSince = Date.now();

  downForMs(now: number): number {
    return this.subscribed ? 0 : now - this.downSince;
  }

  get healthy(): boolean {
    return !this.closed && this.subscribed && this.conn.ready;
  }

  /**
   * Which unbroken stretch of hearing this is: null while the link is not subscribed, another
   * number after every break. A message published while it stays the same is heard.
   */
  get continuity(): number | null {
    return this.healthy ? this.continuityId : null;
  }

  /** performance.now() at which the newest canary heard back in this continuity was sent (-Infinity: none yet). */
  get heardUpTo(): number {
    return this.heardUpToMs;
  }

  /** Carries the topic from now on. Rejects (and forgets it) when Redis does not confirm. */
  async add(topic: string): Promise<void> {
    if (this.closed) throw new Error("link closed");
    if (this.topics.has(topic)) return;
    this.topics.add(topic);
    if (!this.subscribed) {
      this.topics.delete(topic);
      throw new Error("subscriber link is down");
    }
    try {
      await this.command("subscribe", [redisKeys.channel(topic)]);
    } catch (error) {
      this.topics.delete(topic);
      throw error;
    }
  }

  /**
   * Takes over topics from another link (their slot moved here). They are reported `restored` once
   * subscribed, so whatever was published during the move is re-read from history.
   */
  adopt(topics: string[]): void {
    for (const topic of topics) this.topics.add(topic);
    if (!this.subscribed || topics.length === 0) return; // the next onReady subscribes and reports them
    Promise.all(this.groups(topics.map(redisKeys.channel)).map((group) => this.command("subscribe", group))).then(
      () => this.host.onRestored(topics.filter((t) => this.topics.has(t))),
      (error: Error) => {
        this.host.warn(`${this.options.name}: could not subscribe moved topics (${error.message}); reconnecting`);
        this.reconnect();
      },
    );
  }

  /** Stops carrying the topic. Best effort: a connection that drops forgets it anyway. */
  async remove(topic: string): Promise<void> {
    if (!this.topics.delete(topic) || !this.subscribed) return;
    await this.command("unsubscribe", [redisKeys.channel(topic)]).catch(() => {});
  }

  /** Carries another canary channel (its slot moved to another primary). */
  async moveCanary(channel: string): Promise<void> {
    if (channel === this.canaryChannel) return;
    const old = this.canaryChannel;
    this.canaryChannel = channel;
    this.inFlight.length = 0;
    if (!this.subscribed) return;
    await this.command("subscribe", [channel]).catch(() => this.conn.reconnect());
    await this.command("unsubscribe", [old]).catch(() => {});
  }

  /** One canary tick: declares the link deaf when an accepted canary did not come back in time. */
  checkCanary(now: number): void {
    if (this.closed || !this.subscribed) return;
    while (this.inFlight.length > 0 && this.inFlight[0]!.nonce <= this.received) this.inFlight.shift();
    const oldest = this.inFlight[0];
    if (oldest !== undefined && now - oldest.at > this.options.canaryTimeoutMs) {
      this.host.warn(`${this.options.name}: deaf (canary not received): reconnecting`);
      this.inFlight.length = 0;
      this.reconnect();
      return;
    }
    const nonce = ++this.sent;
    this.sentAt.set(nonce, performance.now());
    if (this.sentAt.size > 256) this.sentAt.delete(this.sentAt.keys().next().value!);
    this.host.publishCanary(this.canaryChannel, String(nonce)).then(
      () => {
        if (nonce > this.received && this.inFlight.length < 64) this.inFlight.push({ nonce, at: now });
      },
      () => {},
    );
  }

  /** Drops the connection and reconnects (which resubscribes and reports the topics restored). */
  reconnect(): void {
    if (this.closed) return;
    if (this.subscribed) this.downSince = Date.now();
    this.subscribed = false;
    this.broken();
    this.conn.reconnect();
  }

  /** Messages may be missed from here on: nothing heard so far vouches for what comes next. */
  private broken(): void {
    this.continuityId++;
    this.heardUpToMs = -Infinity;
    this.sentAt.clear();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.subscribed = false;
    clearTimeout(this.retry);
    this.firstReady?.();
    this.conn.close();
  }

  private async onReady(): Promise<void> {
    const generation = ++this.generation;
    const topics = [...this.topics];
    const channels = [...this.options.extraChannels, this.canaryChannel, ...topics.map(redisKeys.channel)];
    try {
      await Promise.all(this.groups(channels).map((group) => this.command("subscribe", group)));
    } catch (error) {
      if (this.closed) return;
      this.host.warn(`${this.options.name}: could not resubscribe (${(error as Error).message}); reconnecting`);
      if (this.options.mode === "sharded") this.host.onMoved();
      clearTimeout(this.retry);
      this.retry = setTimeout(() => this.reconnect(), Math.min(1000, this.options.commandTimeoutMs));
      return;
    }
    if (this.closed || generation !== this.generation || !this.conn.ready) return;
    this.broken();
    this.subscribed = true;
    this.inFlight.length = 0;
    const again = this.everSubscribed;
    const restored = again ? [...this.topics] : topics;
    this.everSubscribed = true;
    this.firstReady?.();
    this.firstReady = undefined;
    // A link back after a loss is reported even without topics: it may carry the control channel,
    // whose messages (logouts) went unheard meanwhile, and operators count reconnects.
    if (again || restored.length > 0) this.host.onRestored(restored);
  }

  /** A canary came back: whatever Redis took before it was sent has been heard (sent in this continuity only). */
  private heard(nonce: number): void {
    const at = this.sentAt.get(nonce);
    if (at === undefined) return;
    if (at > this.heardUpToMs) this.heardUpToMs = at;
    for (const earlier of this.sentAt.keys()) {
      if (earlier > nonce) break;
      this.sentAt.delete(earlier);
    }
  }

  /** Sharded links subscribe one slot per call; plain links everything at once. */
  private groups(channels: string[]): string[][] {
    if (this.options.mode === "plain") return channels.length === 0 ? [] : [channels];
    const bySlot = new Map<number, string[]>();
    for (const channel of channels) {
      const slot = slotOf(channel);
      const group = bySlot.get(slot);
      if (group === undefined) bySlot.set(slot, [channel]);
      else group.push(channel);
    }
    return [...bySlot.values()];
  }

  private command(kind: "subscribe" | "unsubscribe", channels: string[]): Promise<unknown> {
    return this.conn.command(kind, channels);
  }

  private onPayload(channel: string, payload: string): void {
    if (channel === this.canaryChannel) {
      const nonce = Number(payload) || 0;
      this.received = Math.max(this.received, nonce);
      this.heard(nonce);
      return;
    }
    this.host.onMessage(channel, payload);
  }
}
