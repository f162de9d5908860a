/**
 * Which webhook events happened (SPEC §6), decided where the deployment-wide facts are known, so
 * that each is emitted once for the whole deployment, by the process that learnt it:
 * - `presence.join` / `presence.leave`: the presence store said a user's membership of a topic
 *   changed — the gateway's presence ledger (first / last socket, across machines) or a sweep
 *   of a crashed process's entries — and the gateway's announcer let it through (at most one per
 *   user and topic per second; a join and a leave within it cancel out, SPEC §8).
 * - `user.online` / `user.offline`: the same mechanism on one presence entry per socket under
 *   `#online:<user id>` (no topic name can contain `#`): a user's first socket anywhere joins,
 *   its last one leaves, and a crashed process's sockets leave with its presence lease (within
 *   PRESENCE_LEASE_MS × 4/3), through the same retries as topic presence in a Redis outage, and
 *   the same once-a-second bound.
 * - `message.published`: a publication the broker accepted (not a deduplicated retry) on a topic
 *   whose namespace has `webhook: true`.
 */
import type { Logger } from "../log.ts";
import type { Presence } from "../presence/presence.ts";
import type { PublishInput, PublishResult } from "../broker/broker.ts";
import type { User } from "../protocol/frames.ts";
import { PresenceLedger, type LedgerMember, type PresenceChange } from "../gateway/presence-ledger.ts";
import { Announcer } from "../gateway/announcer.ts";
import { orderingKey } from "./events.ts";
import type { Webhooks } from "./webhooks.ts";

const ONLINE = "#online:";

/** The presence "topic" that holds a user's sockets for user.online / user.offline. */
export const onlineTopic = (userId: string) => `${ONLINE}${userId}`;

export interface DeploymentEventsOptions {
  webhooks: Webhooks;
  presence: Presence;
  log: Logger;
  /** Whether publications on `topic` are `message.published` events: its namespace has `webhook: true` (SPEC §5). */
  webhookFor(topic: string): boolean;
}

export class DeploymentEvents {
  private readonly webhooks: Webhooks;
  private readonly webhookFor: (topic: string) => boolean;
  private readonly online: PresenceLedger;
  /** A user who connects and disconnects in a loop is announced at most once a second, like join/leave (SPEC §8). */
  private readonly onlineAnnouncer: Announcer;

  constructor(options: DeploymentEventsOptions) {
    this.webhooks = options.webhooks;
    this.webhookFor = options.webhookFor;
    this.onlineAnnouncer = new Announcer((_topic, change, user) => this.onlineChanged(change, user));
    this.online = new PresenceLedger({
      presence: options.presence,
      log: options.log,
      announce: (topic, change, user) => this.onlineAnnouncer.announce(topic, change, user),
    });
  }

  /** A user's membership of a topic changed, deployment-wide (called once per change). */
  presenceChanged(topic: string, change: PresenceChange, user: User): void {
    void this.webhooks.emit(change, orderingKey.topic(topic), { topic, user: { id: user.id, name: user.name } });
  }

  /**
   * The presence store removed a crashed (or closing) process's entry for `topic`. True when that
   * was a user's last socket anywhere (user.offline emitted here); false for a real topic.
   */
  expired(topic: string, user: User): boolean {
    if (!topic.startsWith(ONLINE)) return false;
    this.onlineAnnouncer.announce(topic, "presence.leave", user);
    return true;
  }

  /** An authenticated socket opened (after welcome). */
  socketOpened(member: LedgerMember): void {
    if (member.user !== null) void this.online.join(member, onlineTopic(member.user.id));
  }

  /** A socket closed; nothing happens for one that never was `socketOpened`. */
  socketClosed(member: LedgerMember): void {
    if (member.user !== null) this.online.leave(member, onlineTopic(member.user.id));
  }

  /**
   * After a publication (`result` null: an ephemeral topic's, without seq and epoch), before the
   * publisher's ack, so that an acknowledged publication is in the outbox. Never rejects.
   */
  async published(topic: string, input: PublishInput, result: PublishResult | null): Promise<void> {
    if (result?.duplicate === true || !this.webhookFor(topic)) return;
    const position = result === null ? {} : { seq: result.seq, epoch: result.epoch };
    const frame = { type: "message", topic, ...position, from: input.from, data: input.data ?? null, ts: input.ts };
    await this.webhooks.emit("message.published", orderingKey.topic(topic), frame);
  }

  /** Stops the ledger's retries; online/offline changes held by the announcer go out now. */
  close(): void {
    this.online.close();
    this.onlineAnnouncer.close();
  }

  private onlineChanged(change: PresenceChange, user: User): void {
    const type = change === "presence.join" ? "user.online" : "user.offline";
    void this.webhooks.emit(type, orderingKey.user(user.id), { user: { id: user.id, name: user.name } });
  }
}
