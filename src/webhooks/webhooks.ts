/**
 * The webhooks of one process (SPEC §6), built when WEBHOOK_URL is set: `emit` stores an event in
 * the deployment's outbox (whichever process saw it happen emits it, once), and this process's
 * sender delivers the share of the outbox it holds. Nothing here knows about sockets: the gateway
 * decides which events happened.
 */
import { errorFields, type Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { BackoffOptions } from "./backoff.ts";
import { newEvent, type WebhookEventType } from "./events.ts";
import type { Outbox } from "./outbox.ts";
import { WebhookSender } from "./sender.ts";

export interface WebhooksOptions {
  outbox: Outbox;
  url: string;
  secret: string;
  maxAgeS: number;
  log: Logger;
  metrics?: Metrics;
  backoff?: BackoffOptions;
}

export class Webhooks {
  private readonly outbox: Outbox;
  private readonly sender: WebhookSender;
  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  /** Appends not yet answered, so `stop` can wait for them. */
  private readonly appending = new Set<Promise<void>>();
  private lost = 0;
  private lostLoggedAt = 0;

  constructor(options: WebhooksOptions) {
    this.outbox = options.outbox;
    this.log = options.log;
    this.metrics = options.metrics;
    this.sender = new WebhookSender({
      outbox: options.outbox,
      url: options.url,
      secret: options.secret,
      maxAgeS: options.maxAgeS,
      log: options.log,
      counters: options.metrics,
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    });
  }

  async start(): Promise<void> {
    await this.outbox.start();
    this.sender.start();
    this.metrics?.bindWebhooks(() => this.outbox.stats());
  }

  /**
   * Stores one event (`key`: its ordering key, events.ts `orderingKey`). Never rejects: an event
   * the outbox cannot store (Redis unreachable) is logged and counted as failed (`outbox`).
   */
  emit(type: WebhookEventType, key: string, data: unknown): Promise<void> {
    const event = newEvent(type, data);
    const appended = this.outbox.append(key, event).catch((error) => {
      this.metrics?.webhooksFailed.inc({ reason: "outbox" });
      // One line per 10 s at most: an outage would otherwise log every event.
      this.lost++;
      if (Date.now() - this.lostLoggedAt < 10_000) return;
      this.log.error("webhook events lost: the outbox could not store them", { lost: this.lost, event: event.id, type, key, ...errorFields(error) });
      this.lost = 0;
      this.lostLoggedAt = Date.now();
    });
    this.appending.add(appended);
    void appended.finally(() => this.appending.delete(appended));
    return appended;
  }

  /**
   * Stops sending. With `flushMs` > 0 it first waits, that long at most, for the events this
   * process holds to be delivered (the in-process outbox is lost at exit; Redis keeps its events
   * for the other processes, so there it is 0).
   */
  async stop(flushMs = 0): Promise<void> {
    await Promise.all(this.appending);
    const deadline = Date.now() + flushMs;
    while (Date.now() < deadline && ((await this.outbox.stats().catch(() => null))?.length ?? 0) > 0) await Bun.sleep(20);
    await this.sender.close();
  }
}
