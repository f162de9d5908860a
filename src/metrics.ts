/**
 * Prometheus metrics (prom-client, which runs under Bun). One Metrics per process; `/metrics`
 * renders its registry. Names follow Prometheus conventions: `_total` counters, `_seconds`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class Metrics {
  readonly registry = new Registry();

  readonly wsOpened = new Counter({ name: "switchboard_connections_opened_total", help: "Sockets authenticated, by auth mode", labelNames: ["auth"], registers: [this.registry] });
  readonly wsClosed = new Counter({ name: "switchboard_connections_closed_total", help: "Sockets closed, by close code as Bun reported it", labelNames: ["code"], registers: [this.registry] });
  readonly closesSent = new Counter({ name: "switchboard_closes_sent_total", help: "Close codes the server sent", labelNames: ["code"], registers: [this.registry] });
  readonly connections = new Gauge({ name: "switchboard_connections", help: "Open sockets on this process", registers: [this.registry] });
  readonly upgradesRejected = new Counter({ name: "switchboard_upgrades_rejected_total", help: "Upgrades refused before the 101, by reason", labelNames: ["reason"], registers: [this.registry] });
  readonly authFailures = new Counter({ name: "switchboard_auth_failures_total", help: "Authentication failures, by reason", labelNames: ["reason"], registers: [this.registry] });
  readonly framesIn = new Counter({ name: "switchboard_frames_in_total", help: "Client frames handled, by type", labelNames: ["type"], registers: [this.registry] });
  readonly framesOut = new Counter({ name: "switchboard_frames_out_total", help: "Frames sent to one socket, by type", labelNames: ["type"], registers: [this.registry] });
  readonly publications = new Counter({ name: "switchboard_publications_total", help: "Publications accepted by the broker, by source", labelNames: ["source"], registers: [this.registry] });
  readonly publishFailures = new Counter({ name: "switchboard_publish_failures_total", help: "Publications refused because the broker was unreachable", registers: [this.registry] });
  readonly deliveries = new Counter({ name: "switchboard_fanouts_total", help: "Publications and presence frames fanned out to this process's subscribers (one per frame, not per socket)", registers: [this.registry] });
  readonly publishSeconds = new Histogram({ name: "switchboard_publish_seconds", help: "Broker publish latency", buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [this.registry] });
  readonly repairs = new Counter({ name: "switchboard_gap_repairs_total", help: "Gaps seen on a topic, by outcome (repaired from history, resync sent, failed and retried)", labelNames: ["outcome"], registers: [this.registry] });
  readonly recoveries = new Counter({ name: "switchboard_recoveries_total", help: "Subscribes with since, by whether everything missed was replayed", labelNames: ["recovered"], registers: [this.registry] });
  readonly slowConsumers = new Counter({ name: "switchboard_slow_consumer_disconnects_total", help: "Sockets closed for passing the backpressure limit", registers: [this.registry] });
  readonly rateLimited = new Counter({ name: "switchboard_rate_limited_frames_total", help: "Client frames refused by the rate limit", registers: [this.registry] });
  readonly loginThrottled = new Counter({ name: "switchboard_login_throttled_total", help: "Logins refused with 429", registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "switchboard_" });
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
