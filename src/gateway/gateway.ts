/**
 * The gateway owns this process's sockets: it wires the hub to the broker, fans publications out
 * to local sockets, and carries the cross-socket duties (caps, session revocation, presence,
 * drain). It is the ConnectionHost every Connection talks to. Only this folder touches Bun's
 * server API. Who a request is, is decided in auth/ before the gateway sees it.
 */
import type { Config } from "../config.ts";
import type { Services } from "../services.ts";
import type { Logger } from "../log.ts";
import { errorFields } from "../log.ts";
import type { ControlMessage, Position, PublishInput, PublishResult } from "../broker/broker.ts";
import type { Credentials, Identity, Outcome } from "../auth/credentials.ts";
import type { Action, Permissions } from "../auth/permissions.ts";
import type { Namespace } from "../auth/namespaces.ts";
import { ephemeralFrame } from "../broker/frame.ts";
import type { PresenceMember, User } from "../protocol/frames.ts";
import { Close, ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { inboxOf } from "../protocol/topics.ts";
import { Hub, type Ack } from "./hub.ts";
import { Registry } from "./registry.ts";
import { LoadGuard } from "./load-guard.ts";
import { PresenceLedger, type PresenceChange } from "./presence-ledger.ts";
import { isPresenceFrame, presenceChannel, type ConnectionHost, type Socket } from "./connection-host.ts";
import type { SwitchboardServer } from "./socket.ts";
import { Metrics, messageTs } from "../metrics.ts";
import type { Snapshot } from "../deployment/heartbeat.ts";
import { ServerCalls, type UserCall } from "./server-calls.ts";
import type { Webhooks } from "../webhooks/webhooks.ts";
import { DeploymentEvents } from "../webhooks/deployment-events.ts";
import { SubscriptionCounts, TopicCreations } from "./budgets.ts";
import { Announcer } from "./announcer.ts";

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
  private readonly creations: TopicCreations;
  private readonly announcer = new Announcer((topic, type, user) => this.broadcastPresence(topic, type, user));
  /** Webhook events this process learns of; null without WEBHOOK_URL. */
  private readonly events: DeploymentEvents | null;
  server: SwitchboardServer | null = null;
  draining = false;
  private rechecking = false;
  /** Event-loop lag: past SHED_LAG_MS new upgrades are shed with 1013 (upgrade.ts). */
  readonly load: LoadGuard;

  constructor(deps: GatewayDeps) {
    this.config = deps.config;
    this.services = deps.services;
    this.credentials = deps.credentials;
    this.permissions = deps.permissions;
    this.log = deps.log;
    this.metrics = deps.metrics ?? new Metrics();
    this.subscriptions = new SubscriptionCounts(deps.config.maxSubscriptionsPerUser);
    this.creations = new TopicCreations(deps.config.topicCreationsPerMin);
    this.load = new LoadGuard(deps.config.shedLagMs ?? 0);
    this.hub = new Hub({
      broker: deps.services.broker,
      fanout: (topic, frame) => this.fanout(topic, frame),
      // A user's inbox outlives their last socket a little: a reconnect (a page load, a storm
      // after a deploy) then joins it at once and gets welcome in the 101's write.
      lingerMs: (topic) => (isInbox(topic) ? INBOX_LINGER_MS : 0),
      // No more than the namespace's history keeps (SPEC §5 `history.size`): a `since` older than
      // that is not recovered, from Redis or from this cache.
      replayCacheSize: (topic) => this.namespaceOf(topic)?.history.size ?? this.config.historySize,
      onHistoryRead: (_topic, reason) => this.metrics.historyReads.inc({ reason }),
      onRepair: (topic, outcome) => {
        this.metrics.repairs.inc({ outcome });
        if (outcome !== "repaired") this.log.warn("topic gap", { topic, outcome });
      },
      isEphemeral: (topic) => this.namespaceOf(topic)?.delivery === "ephemeral",
    });
    this.ledger = new PresenceLedger({ presence: deps.services.presence, announce: (topic, type, user) => this.announce(topic, type, user), log: this.log });
    this.calls = new ServerCalls({
      broker: deps.services.broker,
      deployment: deps.services.deployment,
      instanceId: deps.config.instanceId,
      act: (call) => this.act(call),
      log: (message, fields) => this.log.warn(message, fields),
    });
    // SPEC §5 `webhook`: a namespace's publications are also `message.published` events.
    const webhookFor = (topic: string) => this.namespaceOf(topic)?.webhook === true;
    this.events = deps.webhooks
      ? new DeploymentEvents({ webhooks: deps.webhooks, presence: deps.services.presence, log: this.log, webhookFor })
      : null;
    this.metrics.bind({
      connectionsByAuth: () => {
        const counts = new Map<string, number>();
        for (const conn of this.registry.all) counts.set(conn.via, (counts.get(conn.via) ?? 0) + 1);
        return counts;
      },
      brokerUp: () => deps.services.broker.healthy,
      revocationChecks: () => ({ local: deps.services.revocations.hits, store: deps.services.revocations.reads }),
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
        void this.recheckSessions();
      },
    });
    await presence.start({
      onExpired: (topic, user) => {
        if (this.events?.expired(topic, user)) return;
        this.announce(topic, "presence.leave", user);
      },
    });
  }

  /**
   * Local fan-out of one serialized frame; a drop means a subscriber passed its limit. For a
   * `message`, the lag since its `ts` is read from the frame's tail (no parse on the hot path).
   */
  fanout(topic: string, frame: string): void {
    const server = this.server;
    if (server === null) return;
    this.metrics.deliveries.inc();
    // Join/leave frames reach only the sockets that may read presence (SPEC §5).
    const channel = isPresenceFrame(frame) ? presenceChannel(topic) : topic;
    const sockets = server.subscriberCount(channel);
    this.metrics.frameOut(frame, sockets);
    if (frame.startsWith('{"type":"message"')) {
      this.metrics.socketDeliveries.inc(sockets);
      const ts = messageTs(frame);
      if (Number.isFinite(ts)) this.metrics.deliveryLag.observe(Math.max(0, Date.now() - ts) / 1000);
    }
    if (server.publish(channel, frame, false) === 0) {
      // The hub's members are the sockets this gateway subscribed: every one is a Socket. One still
      // being sent its replay (paced by its drain) is not subscribed locally yet: this frame did not
      // go to it, and it gets it after the replay.
      for (const member of this.hub.members(topic)) {
        const conn = member as Socket;
        if (conn.receives(topic) && conn.bufferedAmount() >= this.config.backpressureLimitBytes) conn.closeSlow();
      }
    }
  }

  private namespaceOf(topic: string): Namespace | null {
    return this.permissions.namespaceOf(topic);
  }

  /**
   * Publishes at the broker; any failure there is `unavailable` (nothing was published). A user's
   * publish that may bring a topic into existence takes from its TOPIC_CREATIONS_PER_MIN budget.
   * An ephemeral topic's frame skips the ordering point: one broker broadcast, no seq, no history,
   * no idempotency, nothing stored (so no creation budget either); resolves with null.
   */
  async publish(topic: string, input: PublishInput): Promise<PublishResult | null> {
    if (this.namespaceOf(topic)?.delivery === "ephemeral") return this.publishEphemeral(topic, input);
    const started = performance.now();
    try {
      const mayCreate = input.from !== "server" && !this.followedByOthers(topic, input.from);
      const creation = mayCreate ? await this.creations.admit(input.from, () => this.exists(topic, input.from)) : TopicCreations.none();
      let result: PublishResult;
      try {
        result = await this.services.broker.publish(topic, input);
      } finally {
        creation.settle();
      }
      if (mayCreate && result.seq === 1 && !result.duplicate) this.creations.created(input.from);
      this.metrics.publications.inc({ source: input.from === "server" ? "api" : "ws" });
      this.metrics.publishSeconds.observe((performance.now() - started) / 1000);
      // Stored in the webhook outbox before the publisher hears its ack (at least once).
      await this.events?.published(topic, input, result);
      return result;
    } catch (error) {
      this.metrics.publishFailures.inc();
      if (error instanceof SwitchboardError) throw error;
      this.log.warn("publish failed", { topic, ...errorFields(error) });
      throw new SwitchboardError(ErrorCode.unavailable, "the broker is unreachable; nothing was published, retry");
    }
  }

  /** This process as the deployment registry shows it (`/api/info`, `/api/topics`). */
  snapshot(): Snapshot {
    const topics = this.hub.memberCounts();
    const { instanceId: id, region } = this.config;
    return { status: { id, region, connections: this.registry.size, topics: topics.size, startedAt: this.startedAt, draining: this.draining }, topics };
  }

  /**
   * True when a socket of another user follows the topic here. The publisher's own subscription
   * does not make a topic exist: subscribe, publish, unsubscribe would otherwise store a history
   * for every new topic without touching TOPIC_CREATIONS_PER_MIN. At most the user's own sockets
   * (MAX_CONNECTIONS_PER_USER) are passed before another user's, so a big room costs no more.
   */
  private followedByOthers(topic: string, userId: string): boolean {
    for (const member of this.hub.members(topic)) if ((member as Socket).userId !== userId) return true;
    return false;
  }

  /**
   * True when the topic has history, or another user's subscriber here. Asked without creating
   * anything: a publish refused past the budget must leave no trace (not even an epoch) in the broker.
   */
  private async exists(topic: string, userId: string): Promise<boolean> {
    if (this.followedByOthers(topic, userId)) return true;
    return (await this.services.broker.latestSeq(topic)) > 0;
  }

  /**
   * Broadcast is best effort and says nothing of failures: refuse up front while the broker is down.
   * On a webhook namespace the event (without seq and epoch) is stored before the ack, as for an
   * ordered topic.
   */
  private async publishEphemeral(topic: string, input: PublishInput): Promise<null> {
    const { broker } = this.services;
    if (!broker.healthy) {
      this.metrics.publishFailures.inc();
      throw new SwitchboardError(ErrorCode.unavailable, "the broker is unreachable; nothing was published, retry");
    }
    await broker.broadcast(topic, ephemeralFrame(topic, input));
    this.metrics.publications.inc({ source: input.from === "server" ? "api" : "ws" });
    await this.events?.published(topic, input, null);
    return null;
  }

  // ── ConnectionHost ────────────────────────────────────────────────────────

  authorize(conn: Socket, action: Action, topic: unknown): Promise<Namespace> {
    return this.permissions.authorize({ kind: "user", user: conn.user!, caps: conn.caps }, action, topic);
  }

  readsPresence(conn: Socket, topic: string): boolean {
    return this.permissions.readsPresence({ kind: "user", user: conn.user!, caps: conn.caps }, topic);
  }

  joinsInbox(conn: Socket, inbox: string): boolean {
    return this.permissions.allowsNow({ kind: "user", user: conn.user!, caps: conn.caps }, "subscribe", inbox);
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
    this.metrics.wsOpened.inc({ auth: conn.via });
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

  /**
   * Presence changes, at most one per user and topic per second (announcer.ts), and only where the
   * namespace keeps presence: join/leave frames where it sends them (`joinLeave`, SPEC §5), webhook
   * events wherever it keeps presence (SPEC §6).
   */
  private announce(topic: string, type: PresenceChange, user: User): void {
    const ns = this.namespaceOf(topic);
    if (ns === null || !ns.presence) return;
    // joinLeave off sends no frames, but the app still hears of the change (SPEC §6 webhooks:
    // every topic with presence); without webhooks there is nothing to announce.
    if (!ns.joinLeave && this.events === null) return;
    this.announcer.announce(topic, type, user);
  }

  private broadcastPresence(topic: string, type: PresenceChange, user: User): void {
    // After the announcer: webhooks are bounded like the frames (SPEC §8), one per change it lets
    // through. `joinLeave: false` turns off the frames only: the namespace keeps presence, so its
    // presence.join / presence.leave events still go out.
    this.events?.presenceChanged(topic, type, user);
    if (this.namespaceOf(topic)?.joinLeave !== true) return;
    const frame = JSON.stringify({ type, topic, user });
    this.services.broker.broadcast(topic, frame).catch((error) => {
      this.log.warn("presence announcement failed", { topic, ...errorFields(error) });
    });
  }

  // ── Sessions ──────────────────────────────────────────────────────────────

  /** Revokes a session everywhere: its sockets on every machine close with 4001. */
  async revokeSession(sid: string, ttlS: number): Promise<void> {
    await this.services.stores.revocations.revoke(sid, ttlS);
    this.closeSession(sid);
    await this.services.broker.sendControl({ type: "revoke-session", sid });
  }

  private closeSession(sid: string): void {
    for (const conn of this.registry.withSession(sid)) conn.close(Close.unauthorized, "session revoked");
  }

  /**
   * After a break of the control link a logout may have gone unheard here (Redis pub/sub is at
   * most once): every open socket's session is asked again and the revoked ones close with 4001.
   */
  private async recheckSessions(): Promise<void> {
    if (this.rechecking) return;
    this.rechecking = true;
    try {
      await Promise.all(
        this.registry.sessions().map(async (sid) => {
          if (await this.services.revocations.isRevoked(sid).catch(() => false)) this.closeSession(sid);
        }),
      );
    } finally {
      this.rechecking = false;
    }
  }

  private onControl(message: ControlMessage): void {
    if (message.type === "revoke-session") {
      this.services.revocations.heard(message.sid);
      this.closeSession(message.sid);
    } else if (message.type === "call" || message.type === "call-reply") this.calls.onControl(message);
  }

  /**
   * A server API call on this process's sockets of the user; resolves with how many it acted on:
   * subscribe — the open sockets now subscribed (each newly subscribed one was sent `subscribed`);
   * unsubscribe — those that were subscribed; disconnect — those closed with 4003.
   */
  private async act(call: UserCall): Promise<number> {
    const conns = this.registry.withUser(call.user).filter((conn) => conn.isOpen);
    switch (call.op) {
      case "disconnect":
        for (const conn of conns) conn.close(Close.serverDisconnect, call.revoke ? "disconnected and revoked by the server" : "disconnected by the server");
        return conns.length;
      case "subscribe": {
        const ns = this.namespaceOf(call.topic);
        if (ns === null) return 0; // the API checked the topic on the machine that took the call
        const done = await Promise.all(conns.map((conn) => conn.serverSubscribe(call.topic, ns)));
        return done.filter(Boolean).length;
      }
      case "unsubscribe":
        return conns.filter((conn) => conn.serverUnsubscribe(call.topic)).length;
    }
  }

  /**
   * The periodic sweep: closes sockets whose credential expired (4001) and, with
   * MAX_CONNECTION_AGE_S, sockets past their jittered age (1012) so clients rebalance after a
   * scale-out. One pass over the sockets instead of a timer per socket.
   */
  sweep(nowMs: number): void {
    const nowS = Math.floor(nowMs / 1000);
    this.creations.sweep();
    for (const conn of this.registry.all) {
      if (!conn.isOpen) continue;
      if (conn.expiresAt !== null && conn.expiresAt < nowS) conn.close(Close.unauthorized, "session expired");
      else if (conn.retireAt !== null && conn.retireAt <= nowMs) conn.close(Close.restarting, "connection age reached; reconnect");
    }
  }

  /** When a new socket should be retired (MAX_CONNECTION_AGE_S ± 10 %), or null. */
  retireAt(openedAt: number): number | null {
    const ageS = this.config.maxConnectionAgeS;
    if (ageS === 0) return null;
    return openedAt + ageS * 1000 * (0.9 + Math.random() * 0.2);
  }

  // ── Drain ─────────────────────────────────────────────────────────────────

  /**
   * Stops taking sockets and closes the open ones with 1012, spread evenly over DRAIN_MS so
   * clients do not all reconnect in the same instant: at most one batch every 20 ms, batch i at
   * `start + i·DRAIN_MS/batches` on an absolute schedule (late timers do not stretch the drain).
   * Resolves when every socket is gone, or at the latest 250 ms after the window, leaving the rest
   * of the process's bound (DRAIN_MS + 1 s) to releasing presence and the broker.
   */
  async drain(): Promise<void> {
    this.draining = true;
    const started = Date.now();
    const conns = [...this.registry.all];
    const drainMs = this.config.drainMs;
    const perBatch = Math.max(1, Math.ceil(conns.length / Math.max(1, Math.floor(drainMs / 20))));
    const batches = Math.ceil(conns.length / perBatch);
    for (let i = 0; i < batches; i++) {
      const wait = started + (i * drainMs) / batches - Date.now();
      if (wait > 0) await Bun.sleep(wait);
      for (const conn of conns.slice(i * perBatch, (i + 1) * perBatch)) conn.close(Close.restarting, "server restarting");
    }
    const deadline = Math.max(started + drainMs, Date.now()) + 250;
    while (this.registry.size > 0 && Date.now() < deadline) await Bun.sleep(10);
  }

  async close(): Promise<void> {
    this.calls.close();
    this.announcer.close();
    this.load.stop();
    this.ledger.close();
    this.events?.close();
    this.hub.close();
  }
}
