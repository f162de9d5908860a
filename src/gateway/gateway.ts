/**
 * The gateway owns this process's sockets: it wires Bun's WebSocket events to Connections,
 * the hub to the broker, and carries the cross-socket duties (caps, session revocation,
 * presence announcements, drain). Only this folder touches Bun's server API.
 */
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import type { Config } from "../config.ts";
import type { Services } from "../services.ts";
import type { Logger } from "../log.ts";
import { errorFields } from "../log.ts";
import type { ControlMessage, PublishInput, PublishResult } from "../broker/broker.ts";
import type { Claims, CredentialKind, SessionSigner } from "../auth/sessions.ts";
import { Close, ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { Hub } from "./hub.ts";
import { Registry } from "./registry.ts";
import { Connection, type SocketData } from "./connection.ts";
import { Metrics, messageTs } from "../metrics.ts";

export type SwitchboardServer = Server<SocketData>;

export interface GatewayDeps {
  config: Config;
  services: Services;
  signer: SessionSigner;
  log: Logger;
  metrics?: Metrics;
}

export class Gateway {
  readonly config: Config;
  readonly services: Services;
  readonly signer: SessionSigner;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly hub: Hub;
  readonly registry = new Registry<Connection>();
  server: SwitchboardServer | null = null;
  draining = false;

  constructor(deps: GatewayDeps) {
    this.config = deps.config;
    this.services = deps.services;
    this.signer = deps.signer;
    this.log = deps.log;
    this.metrics = deps.metrics ?? new Metrics();
    this.hub = new Hub({
      broker: deps.services.broker,
      fanout: (topic, frame) => this.fanout(topic, frame),
      onRepair: (topic, outcome) => {
        this.metrics.repairs.inc({ outcome });
        if (outcome !== "repaired") this.log.warn("topic gap", { topic, outcome });
      },
    });
    this.metrics.bind({
      connectionsByAuth: () => {
        const counts = new Map<string, number>();
        for (const conn of this.registry.all) counts.set(conn.authMode, (counts.get(conn.authMode) ?? 0) + 1);
        return counts;
      },
      brokerUp: () => deps.services.broker.healthy,
    });
  }

  /** Starts the broker and presence with this gateway as their listener. */
  async start(): Promise<void> {
    const { broker, presence } = this.services;
    await broker.start({
      onPublication: (p) => this.hub.onPublication(p),
      onEphemeral: (topic, frame) => this.hub.onEphemeral(topic, frame),
      onControl: (message) => this.onControl(message),
      onReconnect: () => {
        this.metrics.brokerReconnects.inc();
        this.log.warn("broker link restored; re-reading history of every topic", { topics: this.hub.topicsCount() });
        this.hub.onReconnect();
      },
    });
    await presence.start({
      onExpired: (topic, user) => this.announce(topic, "presence.leave", user),
    });
  }

  /** The Bun WebSocket handler. Limits come from the config; deflate stays off. */
  websocket(): WebSocketHandler<SocketData> {
    return {
      maxPayloadLength: this.config.maxPayloadBytes,
      idleTimeout: this.config.idleTimeoutS,
      sendPings: this.config.idleTimeoutS > 0,
      backpressureLimit: this.config.backpressureLimitBytes,
      closeOnBackpressureLimit: false,
      perMessageDeflate: false,
      publishToSelf: false,
      open: (ws) => ws.data.conn.opened(ws),
      message: (ws, message) => ws.data.conn.received(message),
      close: (ws, code) => {
        this.metrics.wsClosed.inc({ code: String(code) });
        const conn = ws.data.conn;
        this.log.info("connection closed", { connectionId: conn.id, user: conn.userId, auth: conn.authMode, code, durationMs: Date.now() - conn.openedAt });
        conn.closed();
      },
    };
  }

  /**
   * Local fan-out of one serialized frame; a drop means a subscriber passed its limit. For a
   * `message`, the lag since its `ts` is read from the frame's tail (no parse on the hot path).
   */
  fanout(topic: string, frame: string): void {
    const server = this.server;
    if (server === null) return;
    this.metrics.deliveries.inc();
    const sockets = server.subscriberCount(topic);
    this.metrics.frameOut(frame, sockets);
    if (frame.startsWith('{"type":"message"')) {
      this.metrics.socketDeliveries.inc(sockets);
      const ts = messageTs(frame);
      if (Number.isFinite(ts)) this.metrics.deliveryLag.observe(Math.max(0, Date.now() - ts) / 1000);
    }
    if (server.publish(topic, frame, false) === 0) {
      for (const member of this.hub.members(topic)) {
        const conn = member as Connection;
        if (conn.ws !== null && conn.ws.getBufferedAmount() >= this.config.backpressureLimitBytes) conn.closeSlow();
      }
    }
  }

  /** Publishes at the broker; any failure there is `unavailable` (nothing was published). */
  async publish(topic: string, input: PublishInput): Promise<PublishResult> {
    const started = performance.now();
    try {
      const result = await this.services.broker.publish(topic, input);
      this.metrics.publications.inc({ source: input.from === "server" ? "api" : "ws" });
      this.metrics.publishSeconds.observe((performance.now() - started) / 1000);
      return result;
    } catch (error) {
      this.metrics.publishFailures.inc();
      if (error instanceof SwitchboardError) throw error;
      this.log.warn("publish failed", { topic, ...errorFields(error) });
      throw new SwitchboardError(ErrorCode.unavailable, "the broker is unreachable; nothing was published, retry");
    }
  }

  // ── Authentication helpers ─────────────────────────────────────────────────

  /**
   * Claims of a valid credential of this kind (cookie session, or first-message / bearer token)
   * whose session is not revoked; null otherwise. Rejects with `unavailable` when the revocation
   * store cannot be reached.
   */
  async verify(kind: CredentialKind, jwt: string): Promise<Claims | null> {
    const claims = await this.signer.verify(kind, jwt);
    if (claims === null) return null;
    return (await this.isRevoked(claims.sid)) ? null : claims;
  }

  async isRevoked(sid: string): Promise<boolean> {
    return this.services.stores.revocations.isRevoked(sid);
  }

  admitUser(_conn: Connection, userId: string): boolean {
    return this.registry.userCount(userId) < this.config.maxConnectionsPerUser;
  }

  authenticated(conn: Connection, userId: string, sid: string): void {
    this.registry.authenticated(conn, userId, sid);
  }

  opened(conn: Connection): void {
    this.metrics.wsOpened.inc({ auth: conn.authMode });
    this.log.info("connection open", { connectionId: conn.id, user: conn.userId, auth: conn.authMode, ip: conn.ip });
  }

  forget(conn: Connection): void {
    this.registry.remove(conn);
  }

  /** Counts and logs a refused authentication. `fields` never carry the credential itself. */
  noteAuthFailure(reason: string, fields: { connectionId?: string; ip?: string } = {}): void {
    this.metrics.authFailures.inc({ reason });
    this.log.info("auth failure", { reason, ...fields });
  }

  noteClose(code: number): void {
    this.metrics.closesSent.inc({ code: String(code) });
  }

  noteSlowConsumer(): void {
    this.metrics.slowConsumers.inc();
  }

  // ── Topics and presence ────────────────────────────────────────────────────

  /**
   * Presence joins in flight, by connection and topic. A leave waits for its socket's join, so a
   * socket that closes while joining leaves after it: no ghost member, and never a
   * `presence.leave` without the `presence.join` before it.
   */
  private readonly joining = new Map<string, Promise<void>>();

  /** Adds the socket to the topic's presence; announces the user when it is its first socket. */
  async joinPresence(conn: Connection, topic: string): Promise<void> {
    const user = conn.user!;
    const { presence } = this.services;
    conn.present.add(topic);
    const key = `${conn.id} ${topic}`;
    const done = (async () => {
      try {
        if (await presence.join(topic, conn.id, user)) this.announce(topic, "presence.join", user);
      } catch (error) {
        this.log.warn("presence join failed; retrying", { topic, ...errorFields(error) });
        this.retryPresence(conn, topic, 1);
      }
    })();
    this.joining.set(key, done);
    await done;
    if (this.joining.get(key) === done) this.joining.delete(key);
  }

  /** Leaves the hub topic and its presence. Never throws. */
  leaveTopic(conn: Connection, topic: string): void {
    this.hub.leave(conn, topic);
    if (conn.present.delete(topic)) void this.leavePresence(conn, topic);
  }

  private async leavePresence(conn: Connection, topic: string): Promise<void> {
    const user = conn.user!;
    const joining = this.joining.get(`${conn.id} ${topic}`);
    if (joining !== undefined) await joining;
    try {
      if (await this.services.presence.leave(topic, conn.id, user)) this.announce(topic, "presence.leave", user);
    } catch (error) {
      this.log.warn("presence leave failed; retrying", { topic, ...errorFields(error) });
      this.retryPresence(conn, topic, 1);
    }
  }

  /** Presence writes that failed (broker unreachable) and wait to be tried again. */
  private readonly presenceRetries = new Set<ReturnType<typeof setTimeout>>();

  /**
   * Tries a failed presence write again until it lands (every second, then every 5 s, for about
   * ten minutes): whichever the socket's state is then — still subscribed and open → join, else
   * leave — so a Redis outage leaves neither a ghost member (this process keeps renewing its
   * lease, so its entries would never expire) nor a subscriber missing from the list.
   */
  private retryPresence(conn: Connection, topic: string, attempt: number): void {
    if (attempt > 120) {
      this.log.error("presence write abandoned", { topic, connectionId: conn.id });
      return;
    }
    const timer = setTimeout(() => {
      this.presenceRetries.delete(timer);
      const user = conn.user!;
      const wanted = conn.isOpen && conn.present.has(topic);
      const { presence } = this.services;
      const settle = async () => {
        let changed = wanted ? await presence.join(topic, conn.id, user) : await presence.leave(topic, conn.id, user);
        if (!changed) {
          // The write that timed out may have been applied after all (a stalled, not a dead,
          // Redis): then nobody announced it. Decide from the list itself.
          const me = (await presence.members(topic)).find((m) => m.user.id === user.id);
          changed = wanted ? me?.connections === 1 : me === undefined;
        }
        if (changed) this.announce(topic, wanted ? "presence.join" : "presence.leave", user);
        // The socket may have changed its mind while the write ran; the next round settles it.
        if (wanted !== (conn.isOpen && conn.present.has(topic))) this.retryPresence(conn, topic, attempt + 1);
      };
      settle().catch(() => this.retryPresence(conn, topic, attempt + 1));
    }, attempt < 10 ? 1000 : 5000);
    this.presenceRetries.add(timer);
  }

  private announce(topic: string, type: "presence.join" | "presence.leave", user: { id: string; name: string }): void {
    const frame = JSON.stringify({ type, topic, user });
    this.services.broker.broadcast(topic, frame).catch((error) => {
      this.log.warn("presence announcement failed", { topic, ...errorFields(error) });
    });
  }

  // ── Sessions ───────────────────────────────────────────────────────────────

  /** Revokes a session everywhere: its sockets on every machine close with 4001. */
  async revokeSession(sid: string, ttlS: number): Promise<void> {
    await this.services.stores.revocations.revoke(sid, ttlS);
    this.closeSession(sid);
    await this.services.broker.sendControl({ type: "revoke-session", sid });
  }

  private closeSession(sid: string): void {
    for (const conn of this.registry.withSession(sid)) conn.close(Close.unauthorized, "session revoked");
  }

  private onControl(message: ControlMessage): void {
    if (message.type === "revoke-session") this.closeSession(message.sid);
  }

  /**
   * The periodic sweep: closes sockets whose cookie session expired (4001) and, with
   * MAX_CONNECTION_AGE_S, sockets past their jittered age (1012) so clients rebalance after a
   * scale-out. One pass over the sockets instead of a timer per socket.
   */
  sweep(nowMs: number): void {
    const nowS = Math.floor(nowMs / 1000);
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

  // ── Drain ──────────────────────────────────────────────────────────────────

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
    for (const timer of this.presenceRetries) clearTimeout(timer);
    this.presenceRetries.clear();
    this.hub.close();
  }
}

export type { ServerWebSocket };
