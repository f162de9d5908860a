/**
 * The gateway owns this process's sockets: it wires the hub to the broker, fans publications out
 * to local sockets, and carries the cross-socket duties (caps, session revocation, presence,
 * drain). It is the ConnectionHost every Connection talks to. Only this folder touches Bun's
 * server API. Who a request is, is decided in auth/ before the gateway sees it.
 *
 * The duties live in modules of their own, wired here: publishing (publisher.ts), local fan-out
 * (fanout.ts), presence writes (presence-ledger.ts) and what they announce
 * (presence-announcements.ts), session revocation (session-revocation.ts), server API calls
 * (server-calls.ts), the sweep and the drain (lifetimes.ts).
 */
import type { Config } from "../config.ts";
import type { Services } from "../services.ts";
import type { Logger } from "../log.ts";
import type { ControlMessage, Position, PublishInput, PublishResult } from "../broker/broker.ts";
import type { Credentials, Identity, Outcome } from "../auth/credentials.ts";
import type { Action, Actor, Decision, Permissions } from "../auth/permissions.ts";
import type { Namespace } from "../auth/namespaces.ts";
import type { PresenceMember } from "../protocol/frames.ts";
import { inboxOf } from "../protocol/topics.ts";
import { Hub, type Ack } from "./hub.ts";
import { Registry } from "./registry.ts";
import { LoadGuard } from "./load-guard.ts";
import { PresenceLedger } from "./presence-ledger.ts";
import type { ConnectionHost, Socket } from "./connection-host.ts";
import type { SwitchboardServer } from "./socket.ts";
import { Metrics } from "../metrics.ts";
import type { Snapshot } from "../deployment/heartbeat.ts";
import { actOnSockets, ServerCalls } from "./server-calls.ts";
import type { Webhooks } from "../webhooks/webhooks.ts";
import { DeploymentEvents } from "../webhooks/deployment-events.ts";
import { SubscriptionCounts } from "./budgets.ts";
import { PresenceAnnouncements } from "./presence-announcements.ts";
import { Publisher } from "./publisher.ts";
import { SessionRevocation } from "./session-revocation.ts";
import { drainSockets, retirementTime, sweepSockets } from "./lifetimes.ts";
import { fanOut } from "./fanout.ts";
import { reclaimAfterBursts, type BurstReclaim } from "./burst-reclaim.ts";

/** How long a user's inbox stays followed after their last socket here closed. */
const INBOX_LINGER_MS = 5000;
const isInbox = (topic: string) => topic.startsWith(inboxOf(""));

export interface GatewayDeps {
  config: Config;
  services: Services;
  credentials: Credentials;
  /** Who may do what with a topic, and each namespace's options (SPEC §5). */
  permissions: Permissions;
  log: Logger;
  metrics?: Metrics;
  /**
   * Webhooks (SPEC §6), when WEBHOOK_URL is set: the gateway tells them what happened. Publications
   * are `message.published` events on the namespaces with `webhook: true` (`permissions`).
   */
  webhooks?: Webhooks | null;
}

export class Gateway implements ConnectionHost {
  readonly config: Config;
  readonly services: Services;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly hub: Hub;
  readonly registry = new Registry<Socket>();
  /** `/api/subscribe`, `/api/unsubscribe`, `/api/disconnect` on every machine. */
  readonly calls: ServerCalls;
  readonly startedAt = Date.now();
  private readonly credentials: Credentials;
  readonly permissions: Permissions;
  private readonly ledger: PresenceLedger;
  /** MAX_SUBSCRIPTIONS_PER_USER, over the user's sockets of this process. */
  readonly subscriptions: SubscriptionCounts;
  private readonly announcements: PresenceAnnouncements;
  private readonly publisher: Publisher;
  private readonly sessions: SessionRevocation;
  /** Webhook events this process learns of; null without WEBHOOK_URL. */
  private readonly events: DeploymentEvents | null;
  server: SwitchboardServer | null = null;
  draining = false;
  /** Set once the deployment registry lists this process (its first heartbeat): `/readyz` waits for it. */
  listed = false;
  /** How long the oldest queued revocation read has waited (SHED_WAIT_MS), or the loop's lag without Redis (SHED_LAG_MS): past it upgrades are shed with 1013 (upgrade.ts). */
  readonly load: LoadGuard;
  /** Memory back to the OS once a burst of upgrades has settled (burst-reclaim.ts). */
  private readonly reclaim: BurstReclaim;

  constructor(deps: GatewayDeps) {
    const { config, services } = deps;
    this.config = config;
    this.services = services;
    this.credentials = deps.credentials;
    this.permissions = deps.permissions;
    this.log = deps.log;
    this.metrics = deps.metrics ?? new Metrics();
    this.subscriptions = new SubscriptionCounts(config.maxSubscriptionsPerUser, config.maxSubscriptionsPerSocket);
    this.load = new LoadGuard({ readWait: services.stores.revocationWaitMs, maxReadWaitMs: config.shedWaitMs ?? 0, maxLagMs: config.shedLagMs ?? 0 });
    this.reclaim = reclaimAfterBursts(this.load, this.log);
    const namespaceOf = (topic: string) => this.permissions.namespaceOf(topic);
    this.hub = new Hub({
      broker: services.broker,
      fanout: (topic, frame) => this.fanout(topic, frame),
      // A user's inbox outlives their last socket a little: a reconnect (a page load, a storm
      // after a deploy) then joins it at once and gets welcome in the 101's write.
      lingerMs: (topic) => (isInbox(topic) ? INBOX_LINGER_MS : 0),
      // No more than the namespace's history keeps (SPEC §5 `history.size`): a `since` older than
      // that is not recovered, from Redis or from this cache.
      replayCacheSize: (topic) => namespaceOf(topic)?.history.size ?? config.historySize,
      onHistoryRead: (_topic, reason) => this.metrics.historyReads.inc({ reason }),
      onRepair: (topic, outcome) => {
        this.metrics.repairs.inc({ outcome });
        if (outcome !== "repaired") this.log.warn("topic gap", { topic, outcome });
      },
      isEphemeral: (topic) => namespaceOf(topic)?.delivery === "ephemeral",
    });
    // SPEC §5 `webhook`: a namespace's publications are also `message.published` events.
    const webhookFor = (topic: string) => namespaceOf(topic)?.webhook === true;
    const events = deps.webhooks ? new DeploymentEvents({ webhooks: deps.webhooks, presence: services.presence, log: this.log, webhookFor }) : null;
    this.events = events;
    this.announcements = new PresenceAnnouncements({ broker: services.broker, log: this.log, namespaceOf, events });
    this.ledger = new PresenceLedger({ presence: services.presence, announce: (topic, type, user) => this.announcements.changed(topic, type, user), log: this.log });
    this.calls = new ServerCalls({
      broker: services.broker,
      deployment: services.deployment,
      instanceId: config.instanceId,
      act: (call) => actOnSockets(this.registry.withUser(call.user), call, namespaceOf),
      log: (message, fields) => this.log.warn(message, fields),
    });
    const followedByOthers = (topic: string, userId: string) => this.hub.followedByOthers(topic, userId);
    this.publisher = new Publisher({ broker: services.broker, metrics: this.metrics, log: this.log, topicCreationsPerMin: config.topicCreationsPerMin, namespaceOf, followedByOthers, events });
    this.sessions = new SessionRevocation(services, this.registry);
    this.bindMetrics();
  }

  private bindMetrics(): void {
    const { broker, revocations } = this.services;
    this.metrics.bind({
      connectionsByAuth: () => {
        const counts = new Map<string, number>();
        for (const conn of this.registry.all) counts.set(conn.via, (counts.get(conn.via) ?? 0) + 1);
        return counts;
      },
      brokerUp: () => broker.healthy,
      revocationChecks: () => ({ local: revocations.hits, store: revocations.reads, kept: revocations.kept }),
    });
  }

  /** Starts the broker and presence with this gateway as their listener. */
  async start(): Promise<void> {
    const { broker, presence } = this.services;
    await broker.start({
      onPublication: (p) => this.hub.onPublication(p),
      onEphemeral: (topic, frame) => this.hub.onEphemeral(topic, frame),
      onControl: (message) => this.onControl(message),
      onReconnect: (topics) => {
        this.metrics.brokerReconnects.inc();
        this.log.warn("broker link restored; re-reading history", { topics: topics?.length ?? this.hub.topicsCount() });
        this.hub.onReconnect(topics);
        // A subscriber link came back; if it was the control channel's, logouts may have gone
        // unheard (the broker does not say which link it was: ask for every session).
        void this.sessions.recheck();
      },
    });
    await presence.start({
      onExpired: (topic, user) => {
        if (this.events?.expired(topic, user)) return;
        this.announcements.changed(topic, "presence.leave", user);
      },
    });
  }

  /** Local fan-out of one serialized frame (fanout.ts). */
  fanout(topic: string, frame: string): void {
    if (this.server !== null) fanOut(this.server, this.metrics, topic, frame, this.hub, this.config.backpressureLimitBytes);
  }

  /**
   * Publishes at the broker (publisher.ts): `unavailable` when it is unreachable; null for an
   * ephemeral topic (no position). On a webhook namespace the event is stored before this resolves.
   */
  publish(topic: string, input: PublishInput): Promise<PublishResult | null> {
    return this.publisher.publish(topic, input);
  }

  /** This process as the deployment registry shows it (`/api/info`, `/api/topics`). */
  snapshot(): Snapshot {
    const topics = this.hub.memberCounts();
    const { instanceId: id, region } = this.config;
    return { status: { id, region, connections: this.registry.size, topics: topics.size, startedAt: this.startedAt, draining: this.draining }, topics, changed: this.hub.takeCountChanges() };
  }

  // ── ConnectionHost ────────────────────────────────────────────────────────

  authorize(conn: Socket, action: Action, topic: unknown): Namespace | Promise<Namespace> {
    const actor: Actor = { kind: "user", user: conn.user!, caps: conn.caps };
    return this.permissions.authorizeNow(actor, action, topic) ?? this.permissions.authorize(actor, action, topic);
  }

  readsPresence(conn: Socket, topic: string): boolean {
    return this.permissions.readsPresence({ kind: "user", user: conn.user!, caps: conn.caps }, topic);
  }

  subscribeVerdict(conn: Socket, topic: string): Decision["verdict"] {
    return this.permissions.verdictNow({ kind: "user", user: conn.user!, caps: conn.caps }, "subscribe", topic);
  }

  authenticate(token: string): Promise<Outcome | null> {
    return this.credentials.identify({ token });
  }

  admit(conn: Socket, identity: Identity): boolean {
    if (this.registry.userCount(identity.user.id) >= this.config.maxConnectionsPerUser) return false;
    this.registry.authenticated(conn, identity.user.id, identity.sid);
    return true;
  }

  renewed(conn: Socket, identity: Identity): void {
    this.registry.changeSession(conn, identity.sid);
  }

  opened(conn: Socket): void {
    this.metrics.wsOpened.inc(conn.via);
    this.log.info("connection open", { connectionId: conn.id, user: conn.userId, auth: conn.via, ip: conn.ip });
    this.events?.socketOpened(conn);
  }

  forget(conn: Socket): void {
    this.registry.remove(conn);
    this.events?.socketClosed(conn);
  }

  follow(conn: Socket, topic: string, since: Position | undefined, onAck: (ack: Ack) => void): Promise<void> {
    return this.hub.subscribe(conn, topic, since, onAck);
  }

  followNow(conn: Socket, topic: string): boolean {
    return this.hub.joinNow(conn, topic);
  }

  topicName(topic: string): string {
    return this.hub.topicName(topic) ?? topic;
  }

  joinPresence(conn: Socket, topic: string): Promise<void> {
    return this.ledger.join(conn, topic);
  }

  leave(conn: Socket, topic: string): void {
    this.hub.leave(conn, topic);
    this.ledger.leave(conn, topic);
  }

  members(topic: string): Promise<PresenceMember[]> {
    return this.services.presence.members(topic);
  }

  noteAuthFailure(reason: string, fields: { connectionId?: string; ip?: string } = {}): void {
    this.credentials.refused(reason, fields);
  }

  // ── Sessions, sweep, drain ────────────────────────────────────────────────

  /** Revokes a session everywhere: its sockets on every machine close with 4001. */
  revokeSession(sid: string, ttlS: number): Promise<void> {
    return this.sessions.revoke(sid, ttlS);
  }

  private onControl(message: ControlMessage): void {
    this.sessions.heardControl(message);
    if (message.type === "call" || message.type === "call-reply") this.calls.onControl(message);
  }

  /** The periodic sweep (lifetimes.ts): expired credentials (4001), connections past their age (1012). */
  sweep(nowMs: number): void {
    this.publisher.sweep();
    sweepSockets(this.registry.all, nowMs);
  }

  /** When a new socket should be retired (MAX_CONNECTION_AGE_S ± 10 %), or null. */
  retireAt(openedAt: number): number | null {
    return retirementTime(openedAt, this.config.maxConnectionAgeS);
  }

  /** Stops taking sockets and closes the open ones with 1012, spread over DRAIN_MS (lifetimes.ts). */
  async drain(): Promise<void> {
    this.draining = true;
    await drainSockets([...this.registry.all], this.config.drainMs, () => this.registry.size);
  }

  async close(): Promise<void> {
    this.calls.close();
    this.sessions.close();
    this.announcements.close();
    this.load.stop();
    this.reclaim.stop();
    this.ledger.close();
    this.events?.close();
    this.hub.close();
  }
}
