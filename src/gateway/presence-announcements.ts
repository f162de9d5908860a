/**
 * What the gateway says when a user's membership of a topic changes (the presence ledger's first /
 * last socket across machines, or a sweep of a crashed process's entries): at most one change per
 * user and topic per second goes through (announcer.ts, SPEC §8), and only where the namespace
 * keeps presence. Each one that goes through is a `presence.join` / `presence.leave` webhook event
 * (SPEC §6) and, unless the namespace has `joinLeave: false`, a frame to the topic's subscribers on
 * every machine (an ephemeral broker broadcast).
 */
import type { Broker } from "../broker/broker.ts";
import type { Namespace } from "../auth/namespaces.ts";
import type { User } from "../protocol/frames.ts";
import { errorFields, type Logger } from "../log.ts";
import type { DeploymentEvents } from "../webhooks/deployment-events.ts";
import { Announcer } from "./announcer.ts";
import type { PresenceChange } from "./presence-ledger.ts";

export interface PresenceAnnouncementsOptions {
  broker: Pick<Broker, "broadcast">;
  log: Logger;
  namespaceOf(topic: string): Namespace | null;
  /** Webhook events; null without WEBHOOK_URL. */
  events: Pick<DeploymentEvents, "presenceChanged"> | null;
}

export class PresenceAnnouncements {
  private readonly announcer = new Announcer((topic, type, user) => this.send(topic, type, user));

  constructor(private readonly options: PresenceAnnouncementsOptions) {}

  /** A user's membership of `topic` changed, deployment-wide. */
  changed(topic: string, type: PresenceChange, user: User): void {
    const ns = this.options.namespaceOf(topic);
    if (ns === null || !ns.presence) return;
    // joinLeave off sends no frames, but the app still hears of the change (SPEC §6 webhooks:
    // every topic with presence); without webhooks there is nothing to announce.
    if (!ns.joinLeave && this.options.events === null) return;
    this.announcer.announce(topic, type, user);
  }

  /** Changes held by the announcer go out now. */
  close(): void {
    this.announcer.close();
  }

  private send(topic: string, type: PresenceChange, user: User): void {
    // After the announcer: webhooks are bounded like the frames (SPEC §8), one per change it lets
    // through. A namespace with `joinLeave: false` keeps presence, so its events go out; frames do not.
    this.options.events?.presenceChanged(topic, type, user);
    if (this.options.namespaceOf(topic)?.joinLeave !== true) return;
    const frame = JSON.stringify({ type, topic, user });
    this.options.broker.broadcast(topic, frame).catch((error) => {
      this.options.log.warn("presence announcement failed", { topic, ...errorFields(error) });
    });
  }
}
