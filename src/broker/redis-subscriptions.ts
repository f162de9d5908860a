/**
 * Which subscriber link carries which topic.
 *
 * - One Redis: one plain link carries the control channel, the canary and every topic.
 * - Redis Cluster: a plain link to one primary carries the control channel (PUBLISH reaches every
 *   node of a cluster), and one sharded link per primary carries the topics whose slots that primary
 *   owns, each with a canary in a slot of its own primary. When the slot map changes (failover,
 *   migration, a node back) the topics whose owner changed move to the new owner's link and are
 *   repaired from history; the other shards' topics are not touched.
 * A link that is down makes the slot map be re-read (at most every `refreshMs`), never in a loop.
 */
import type { Cluster } from "ioredis";
import { slotOf } from "../redis/slot.ts";
import { redisKeys } from "./redis-keys.ts";
import { SubscriberLink, type LinkHost, type LinkOptions } from "./redis-link.ts";

export interface SubscriptionsOptions {
  /** The REDIS_URL (single mode), or the first seed's URL (its credentials and scheme are reused). */
  url: string;
  name: string;
  incarnation: string;
  commandTimeoutMs: number;
  canaryTimeoutMs: number;
  /** Cluster mode: the command client, whose slot map says which primary owns what. */
  cluster?: Cluster;
}

export type SubscriptionsHost = Omit<LinkHost, "onMoved">;

export class Subscriptions {
  private control: SubscriberLink;
  /** `host:port` of the control link's node (cluster mode). */
  private controlNode: string;
  private readonly shards = new Map<string, SubscriberLink>();
  private readonly linkOf = new Map<string, SubscriberLink>();
  private lastRefresh = 0;
  private closed = false;
  private readonly onRefresh = () => this.rebalance();

  constructor(
    private readonly options: SubscriptionsOptions,
    private readonly host: SubscriptionsHost,
  ) {
    this.control = this.controlLink(options.cluster === undefined ? options.url : firstSeed(options.url));
    const seed = new URL(firstSeed(options.url));
    this.controlNode = `${seed.hostname}:${seed.port || 6379}`;
    options.cluster?.on("refresh", this.onRefresh);
  }

  /** The control channel's link; on a cluster any node will do (PUBLISH reaches them all). */
  private controlLink(url: string): SubscriberLink {
    return this.link(url, {
      mode: "plain",
      name: `${this.options.name}:subscriber`,
      extraChannels: [redisKeys.control],
      canaryChannel: redisKeys.canary(this.options.incarnation),
    });
  }

  get healthy(): boolean {
    return this.control.healthy;
  }

  /** The control link's unbroken stretch of hearing (null: down), and what its canaries vouch for. */
  get controlContinuity(): number | null {
    return this.control.continuity;
  }

  get controlHeardUpTo(): number {
    return this.control.heardUpTo;
  }

  /** Resolves once the control link subscribed, or after `waitMs`. */
  async started(waitMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.control.whenFirstSubscribed, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }

  /** Resolves once publications of the topic will arrive; rejects when its link cannot confirm. */
  async add(topic: string): Promise<void> {
    if (this.closed) throw new Error("closed");
    const existing = this.linkOf.get(topic);
    if (existing !== undefined && existing.topics.has(topic)) return;
    const link = this.linkFor(topic);
    if (link === undefined) throw new Error("no primary owns the topic's slot");
    if (!link.healthy) await this.waitUp(link);
    this.linkOf.set(topic, link);
    try {
      await link.add(topic);
    } catch (error) {
      if (this.linkOf.get(topic) === link) this.linkOf.delete(topic);
      if (this.options.cluster !== undefined) this.refresh(true);
      throw error;
    }
  }

  async remove(topic: string): Promise<void> {
    const link = this.linkOf.get(topic);
    this.linkOf.delete(topic);
    await link?.remove(topic);
  }

  /** A canary of the control link only (the revocation fence's, between the ticks of every link). */
  controlTick(now: number): void {
    this.control.checkCanary(now);
  }

  /** The canary tick of every link; a cluster with a link down re-reads its slot map. */
  tick(now: number): void {
    this.control.checkCanary(now);
    for (const link of this.shards.values()) link.checkCanary(now);
    if (this.options.cluster !== undefined && (!this.control.healthy || [...this.shards.values()].some((l) => !l.healthy))) this.refresh();
  }

  close(): void {
    this.closed = true;
    this.options.cluster?.off("refresh", this.onRefresh);
    this.control.close();
    for (const link of this.shards.values()) link.close();
    this.shards.clear();
    this.linkOf.clear();
  }

  private linkFor(topic: string): SubscriberLink | undefined {
    if (this.options.cluster === undefined) return this.control;
    const node = this.ownerOf(slotOf(redisKeys.channel(topic)));
    return node === undefined ? undefined : this.shard(node);
  }

  private shard(node: string): SubscriberLink {
    let link = this.shards.get(node);
    if (link === undefined) {
      link = this.link(this.urlOf(node), {
        mode: "sharded",
        name: `${this.options.name}:ssubscriber:${node}`,
        extraChannels: [],
        canaryChannel: this.canaryFor(node),
      });
      this.shards.set(node, link);
    }
    return link;
  }

  private link(url: string, options: Omit<LinkOptions, "url" | "commandTimeoutMs" | "canaryTimeoutMs">): SubscriberLink {
    return new SubscriberLink(
      { ...options, url, commandTimeoutMs: this.options.commandTimeoutMs, canaryTimeoutMs: this.options.canaryTimeoutMs },
      { ...this.host, onMoved: () => this.refresh(true) },
    );
  }

  /** Moves every topic whose slot changed owner to the new owner's link; closes links left empty. */
  private rebalance(): void {
    if (this.closed || this.options.cluster === undefined) return;
    const moving = new Map<SubscriberLink, string[]>();
    for (const [topic, link] of this.linkOf) {
      const target = this.linkFor(topic);
      if (target === undefined || target === link) continue;
      void link.remove(topic);
      this.linkOf.set(topic, target);
      const list = moving.get(target);
      if (list === undefined) moving.set(target, [topic]);
      else list.push(topic);
    }
    for (const [link, topics] of moving) link.adopt(topics);
    for (const [node, link] of this.shards) {
      if (link.topics.size === 0) {
        link.close();
        this.shards.delete(node);
      } else if (this.ownerOf(slotOf(this.canaryChannelOf(node))) !== node) {
        void link.moveCanary(this.canaryFor(node));
      }
    }
    const primary = this.anyPrimary();
    const down = this.control.downForMs(Date.now());
    const gone = down > 0 && !this.isPrimary(this.controlNode);
    if ((down > 3000 || gone) && primary !== undefined && this.control.topics.size === 0) {
      // Its node may be gone for good (a seed that died): move to a primary of the current map.
      this.control.close();
      this.control = this.controlLink(this.urlOf(primary));
      this.controlNode = primary;
    }
  }

  /** Re-reads the slot map; at most once per second unless a redirection says it is stale. */
  private refresh(now = false): void {
    const cluster = this.options.cluster;
    if (cluster === undefined || this.closed || cluster.status !== "ready") return;
    if (!now && Date.now() - this.lastRefresh < 1000) return;
    this.lastRefresh = Date.now();
    cluster.refreshSlotsCache();
  }

  private async waitUp(link: SubscriberLink): Promise<void> {
    const deadline = Date.now() + Math.max(this.options.commandTimeoutMs, 1000);
    while (!link.healthy && Date.now() < deadline && !this.closed) await Bun.sleep(20);
  }

  private ownerOf(slot: number): string | undefined {
    return this.options.cluster?.slots[slot]?.[0];
  }

  private isPrimary(node: string): boolean {
    return this.options.cluster?.nodes("master").some((n) => `${n.options.host}:${n.options.port}` === node) ?? false;
  }

  private anyPrimary(): string | undefined {
    return this.options.cluster?.slots.find((owners) => owners?.[0] !== undefined)?.[0];
  }

  private readonly canaries = new Map<string, string>();
  private canaryChannelOf(node: string): string {
    return this.canaries.get(node) ?? "";
  }

  /** A canary channel whose slot this primary owns now. */
  private canaryFor(node: string): string {
    for (let n = 0; n < 100_000; n++) {
      const channel = redisKeys.shardCanary(this.options.incarnation, n);
      if (this.ownerOf(slotOf(channel)) === node) {
        this.canaries.set(node, channel);
        return channel;
      }
    }
    return redisKeys.shardCanary(this.options.incarnation, 0);
  }

  private urlOf(node: string): string {
    const url = new URL(firstSeed(this.options.url));
    const colon = node.lastIndexOf(":");
    url.hostname = node.slice(0, colon);
    url.port = node.slice(colon + 1);
    return url.toString();
  }
}

function firstSeed(urls: string): string {
  return urls.split(",")[0]!.trim();
}
