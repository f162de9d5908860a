/**
 * Prometheus metrics (prom-client, which runs under Bun: ~130 ns per labelled inc). One Metrics
 * per process; `/metrics` renders its registry. Names follow Prometheus conventions: `_total`
 * counters, `_seconds` histograms. Which process answered is in `switchboard_info{instance,region}`
 * (not a label on every series: Prometheus owns the `instance` label of a target).
 *
 * Gauges that mirror state (open sockets, the broker link) are read at scrape time from the
 * sources given to `bind`, so they can never drift from the truth.
 */
import { Counter, Gauge, Registry, loadDefaultMetrics } from "./prom.ts";
import { HotCounter, HotHistogram, HotTally } from "./hot-metrics.ts";

export interface MetricSources {
  /** Open sockets (upgraded, authenticated or not) per auth mode: cookie, ticket, token. */
  connectionsByAuth(): Iterable<[string, number]>;
  /** True while the broker reaches its ordering point (always true for the embedded broker). */
  brokerUp(): boolean;
  /** Session revocation checks answered from this process's view and from the store. */
  revocationChecks?(): { local: number; store: number; kept: number };
}

export interface MetricsInfo {
  instance: string;
  region: string;
  broker: "memory" | "redis";
}

/** Latency buckets from loopback (0.1 ms) to a cross-region Redis round trip and well past it. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1, 2.5, 5];

export class Metrics {
  readonly registry = new Registry();
  private sources: MetricSources | null = null;
  /**
   * Set in a worker of `WORKERS=N` (cluster.ts): renders the whole machine's metrics, or null
   * when the supervisor did not answer (then this process's own are served).
   */
  aggregate: (() => Promise<string | null>) | null = null;

  readonly info = new Gauge({ name: "switchboard_info", help: "Always 1; labels say which process answered", labelNames: ["instance", "region", "broker"], registers: [this.registry] });
  readonly wsOpened = new HotCounter(this.registry, { name: "switchboard_connections_opened_total", help: "Sockets authenticated (welcome sent), by auth mode", label: "auth" });
  readonly wsClosed = new HotCounter(this.registry, { name: "switchboard_connections_closed_total", help: "Sockets closed, by close code as Bun reported it (codes a client picks from 3000-4999 as \"other\")", label: "code" });
  readonly closesSent = new Counter({ name: "switchboard_closes_sent_total", help: "Close codes the server sent", labelNames: ["code"], registers: [this.registry] });
  readonly connections = new Gauge({
    name: "switchboard_connections",
    help: "Open sockets on this process, by auth mode",
    labelNames: ["auth"],
    registers: [this.registry],
    collect: () => this.collectConnections(),
  });
  readonly brokerUp = new Gauge({
    name: "switchboard_broker_up",
    help: "1 while the broker's link to its ordering point (Redis) is up, 0 while it is down",
    registers: [this.registry],
    // Summed over a machine's workers, "up" would count workers: the machine is up if all are.
    aggregator: "min",
    collect: () => {
      if (this.sources !== null) this.brokerUp.set(this.sources.brokerUp() ? 1 : 0);
    },
  });
  readonly brokerReconnects = new Counter({ name: "switchboard_broker_reconnects_total", help: "Times the broker link came back after a loss (every topic's history is then re-read)", registers: [this.registry] });
  readonly upgradesRejected = new Counter({ name: "switchboard_upgrades_rejected_total", help: "Upgrades refused before the 101, by reason", labelNames: ["reason"], registers: [this.registry] });
  readonly authFailures = new Counter({ name: "switchboard_auth_failures_total", help: "Authentication failures, by reason", labelNames: ["reason"], registers: [this.registry] });
  readonly framesIn = new HotCounter(this.registry, { name: "switchboard_frames_in_total", help: "Valid client frames handled, by type", label: "type" });
  readonly framesOut = new HotCounter(this.registry, { name: "switchboard_frames_out_total", help: "Frames handed to sockets, by type (a fan-out counts once per local subscriber)", label: "type" });
  readonly publications = new HotCounter(this.registry, { name: "switchboard_publications_total", help: "Publications accepted by the broker, by source (ws, api)", label: "source" });
  readonly publishFailures = new Counter({ name: "switchboard_publish_failures_total", help: "Publications refused because the broker was unreachable", registers: [this.registry] });
  readonly deliveries = new HotTally(this.registry, { name: "switchboard_fanouts_total", help: "Publications and presence frames fanned out to this process's subscribers (one per frame, not per socket)" });
  readonly socketDeliveries = new HotTally(this.registry, { name: "switchboard_deliveries_total", help: "Publications delivered live to sockets (one per subscribed socket)" });
  /** Observed once per publish, between Redis's reply and the ack: a HotHistogram (no label hashing, no allocation). */
  readonly publishSeconds = new HotHistogram(this.registry, { name: "switchboard_publish_seconds", help: "Broker publish latency (append + publish at the ordering point, round trip)", buckets: LATENCY_BUCKETS });
  readonly deliveryLag = new HotHistogram(this.registry, {
    name: "switchboard_delivery_lag_seconds",
    help: "Publication ts (set by the accepting process) to local fan-out on this process; across machines it includes their clock offset",
    buckets: LATENCY_BUCKETS,
  });
  readonly repairs = new Counter({ name: "switchboard_gap_repairs_total", help: "Gaps seen on a topic, by outcome (repaired from history, resync sent, failed and retried)", labelNames: ["outcome"], registers: [this.registry] });
  readonly recoveries = new Counter({ name: "switchboard_recoveries_total", help: "Subscribes with since, by whether everything missed was replayed", labelNames: ["recovered"], registers: [this.registry] });
  readonly slowConsumers = new Counter({ name: "switchboard_slow_consumer_disconnects_total", help: "Sockets closed for passing the backpressure limit", registers: [this.registry] });
  readonly authzAnswers = new Counter({ name: "switchboard_authz_requests_total", help: "Questions sent to AUTHZ_URL (cache hits not counted), by outcome: allow, deny, unavailable", labelNames: ["outcome"], registers: [this.registry] });
  readonly rateLimited = new Counter({ name: "switchboard_rate_limited_frames_total", help: "Client frames refused by the rate limit", registers: [this.registry] });
  readonly revocationChecks = new Counter({
    name: "switchboard_revocation_checks_total",
    help: "Credential revocation checks, by where the answer came from (local: a revocation this process knows; kept: a \"not revoked\" kept behind the revocation fence; store: a read)",
    labelNames: ["answer"],
    registers: [this.registry],
    collect: () => {
      const counts = this.sources?.revocationChecks?.();
      if (counts === undefined) return;
      this.revocationChecks.reset();
      this.revocationChecks.inc({ answer: "local" }, counts.local);
      this.revocationChecks.inc({ answer: "store" }, counts.store);
      this.revocationChecks.inc({ answer: "kept" }, counts.kept);
    },
  });
  readonly historyReads = new Counter({
    name: "switchboard_history_reads_total",
    help: "History reads this process made at the broker, by why (start: a topic's first position; since: a subscribe with since; repair: a gap or reconnect)",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly loginThrottled = new Counter({ name: "switchboard_login_throttled_total", help: "Logins refused with 429", registers: [this.registry] });
  readonly webhooksSent = new Counter({ name: "switchboard_webhooks_sent_total", help: "Webhook events delivered by this process (answered 2xx)", registers: [this.registry] });
  readonly webhooksRetried = new Counter({ name: "switchboard_webhooks_retried_total", help: "Webhook attempts that failed (not 2xx, no answer within 10 s, no connection) and will be retried", registers: [this.registry] });
  readonly webhooksFailed = new Counter({
    name: "switchboard_webhooks_failed_total",
    help: "Webhook events given up: still failing at WEBHOOK_MAX_AGE_S (max_age), or never stored because the outbox was unreachable (outbox)",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly webhookOutboxLength = new Gauge({
    name: "switchboard_webhook_outbox_length",
    help: "Webhook events stored and not yet delivered or given up, in the whole deployment (the same on every process)",
    registers: [this.registry],
    aggregator: "max",
    collect: () => this.collectWebhookOutbox(),
  });
  readonly webhookOutboxOldestAge = new Gauge({
    name: "switchboard_webhook_outbox_oldest_age_seconds",
    help: "Age of the oldest webhook event not yet delivered or given up (0 when none), in the whole deployment",
    registers: [this.registry],
    aggregator: "max",
    collect: () => this.collectWebhookOutbox(),
  });
  private webhookStats: (() => Promise<{ length: number; oldestAt: number | null }>) | null = null;
  private webhookCollect: Promise<void> | null = null;

  private defaults: Promise<void> | null = null;

  constructor(info?: MetricsInfo) {
    if (info !== undefined) this.info.set({ instance: info.instance, region: info.region, broker: info.broker }, 1);
  }

  /**
   * Registers the default process metrics (`switchboard_process_*`, `switchboard_nodejs_*`). Their
   * module costs tens of ms, so the server calls this just after it listens rather than before;
   * every render waits for it, so a scrape never sees the registry without them.
   * The event loop lag histogram (`switchboard_nodejs_eventloop_lag_{min,max,mean,p50,…}_seconds`)
   * samples every EVENT_LOOP_SAMPLE_MS: at prom-client's default 10 ms its timer alone woke an idle
   * process ~100 times a second (bench/README.md "Idle").
   */
  collectDefaults(): Promise<void> {
    this.defaults ??= Promise.resolve().then(() => loadDefaultMetrics()({ register: this.registry, prefix: "switchboard_", eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS }));
    return this.defaults;
  }

  /** Where the state gauges read from at scrape time. */
  bind(sources: MetricSources): void {
    this.sources = sources;
  }

  /** Where the webhook outbox gauges read from at scrape time (only when webhooks are on). */
  bindWebhooks(stats: () => Promise<{ length: number; oldestAt: number | null }>): void {
    this.webhookStats = stats;
    for (const reason of ["max_age", "outbox"]) this.webhooksFailed.inc({ reason }, 0);
  }

  /** One frame sent to `sockets` sockets (a fan-out passes the local subscriber count). */
  frameOut(frame: string, sockets = 1): void {
    if (sockets > 0) this.framesOut.inc(frameType(frame), sockets);
  }

  private rendered: { at: number; text: Promise<string> } | null = null;

  /**
   * The exposition, rendered at most once per second whatever the scrape rate (SPEC §8: one
   * rendering costs milliseconds of CPU); scrapes within the second share it.
   */
  render(now = Date.now()): Promise<string> {
    if (this.rendered !== null && now - this.rendered.at < RENDER_EVERY_MS) return this.rendered.text;
    const text = this.renderNow();
    this.rendered = { at: now, text };
    text.catch(() => {
      if (this.rendered?.text === text) this.rendered = null;
    });
    return text;
  }

  private async renderNow(): Promise<string> {
    if (this.aggregate !== null) {
      const machine = await this.aggregate();
      if (machine !== null) return machine;
    }
    await this.collectDefaults();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Both outbox gauges wait for one read of the outbox per scrape (prom-client collects them concurrently). */
  private collectWebhookOutbox(): Promise<void> {
    this.webhookCollect ??= this.readWebhookOutbox().finally(() => (this.webhookCollect = null));
    return this.webhookCollect;
  }

  private async readWebhookOutbox(): Promise<void> {
    if (this.webhookStats === null) return;
    try {
      const { length, oldestAt } = await this.webhookStats();
      this.webhookOutboxLength.set(length);
      this.webhookOutboxOldestAge.set(oldestAt === null ? 0 : Math.max(0, Date.now() - oldestAt) / 1000);
    } catch {
      // The outbox is unreachable (Redis down): the gauges keep their last values; the broker's
      // own gauge says Redis is down.
    }
  }

  private collectConnections(): void {
    if (this.sources === null) return;
    this.connections.reset();
    for (const mode of ["cookie", "ticket", "token"]) this.connections.set({ auth: mode }, 0);
    for (const [mode, count] of this.sources.connectionsByAuth()) this.connections.set({ auth: mode }, count);
  }
}

const RENDER_EVERY_MS = 1000;
/** How often the default metrics' event loop lag histogram samples (prom-client's default: 10). */
const EVENT_LOOP_SAMPLE_MS = 1000;

const TYPE_HEAD = '{"type":"';

/**
 * The `type` of a frame this server serialized, read from its head without parsing: every server
 * frame starts with `{"type":"`. "other" for anything else.
 */
export function frameType(frame: string): string {
  if (!frame.startsWith(TYPE_HEAD)) return "other";
  const end = frame.indexOf('"', TYPE_HEAD.length);
  return end > TYPE_HEAD.length && end - TYPE_HEAD.length <= 32 ? frame.slice(TYPE_HEAD.length, end) : "other";
}

const TS_TAIL = ',"ts":';

/**
 * The `ts` of a `message` frame, read from its tail without parsing the frame: the broker builds
 * every message frame with `ts` last (broker/frame.ts), and `data` before it is JSON, so the last
 * `,"ts":` is the real one. NaN when the frame does not end that way.
 */
export function messageTs(frame: string): number {
  const at = frame.lastIndexOf(TS_TAIL);
  if (at < 0 || !frame.endsWith("}")) return Number.NaN;
  const text = frame.slice(at + TS_TAIL.length, -1);
  return text.length > 0 && text.length <= 16 ? Number(text) : Number.NaN;
}
