/**
 * The gateway's publish path, for client frames and the server API alike: an ordered topic's
 * publication goes through the broker's ordering point (with the TOPIC_CREATIONS_PER_MIN budget for
 * a user's publish that may create a topic), an ephemeral topic's frame is one broker broadcast
 * (SPEC §5). Either way, on a namespace with `webhook: true` the publication is stored as a
 * `message.published` event before the publisher hears its ack (SPEC §6).
 */
import type { Broker, PublishInput, PublishResult } from "../broker/broker.ts";
import { ephemeralFrame } from "../broker/frame.ts";
import type { Namespace } from "../auth/namespaces.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { errorFields, type Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { DeploymentEvents } from "../webhooks/deployment-events.ts";
import { TopicCreations } from "./budgets.ts";

export interface PublisherOptions {
  broker: Broker;
  metrics: Metrics;
  log: Logger;
  /** TOPIC_CREATIONS_PER_MIN. */
  topicCreationsPerMin: number;
  namespaceOf(topic: string): Namespace | null;
  /**
   * True when a socket of another user follows the topic here (the hub's members: hub.ts). The
   * publisher's own subscription does not make a topic exist: subscribe, publish, unsubscribe would
   * otherwise store a history for every new topic without touching TOPIC_CREATIONS_PER_MIN.
   */
  followedByOthers(topic: string, userId: string): boolean;
  /** Webhook events; null without WEBHOOK_URL. */
  events: DeploymentEvents | null;
}

const unreachable = () => new SwitchboardError(ErrorCode.unavailable, "the broker is unreachable; nothing was published, retry");

export class Publisher {
  private readonly creations: TopicCreations;

  constructor(private readonly options: PublisherOptions) {
    this.creations = new TopicCreations(options.topicCreationsPerMin);
  }

  /**
   * Publishes at the broker; any failure there is `unavailable` (nothing was published). A user's
   * publish that may bring a topic into existence takes from its TOPIC_CREATIONS_PER_MIN budget.
   * An ephemeral topic's frame skips the ordering point: one broker broadcast, no seq, no history,
   * no idempotency, nothing stored (so no creation budget either); resolves with null.
   */
  async publish(topic: string, input: PublishInput): Promise<PublishResult | null> {
    if (this.options.namespaceOf(topic)?.delivery === "ephemeral") return this.publishEphemeral(topic, input);
    const { broker, metrics } = this.options;
    const started = performance.now();
    try {
      const mayCreate = input.from !== "server" && !this.options.followedByOthers(topic, input.from);
      let creation = mayCreate ? this.creations.admit(input.from, () => this.exists(topic, input.from)) : TopicCreations.none();
      if (creation instanceof Promise) creation = await creation; // only at the budget's limit
      let result: PublishResult;
      try {
        result = await broker.publish(topic, input);
      } finally {
        creation.settle();
      }
      if (mayCreate && result.seq === 1 && !result.duplicate) this.creations.created(input.from);
      metrics.publications.inc(input.from === "server" ? "api" : "ws");
      metrics.publishSeconds.observe((performance.now() - started) / 1000);
      // Stored in the webhook outbox before the publisher hears its ack (at least once). Without
      // webhooks, no `await`: a resumption less between Redis's reply and the ack.
      const events = this.options.events;
      if (events !== null) await events.published(topic, input, result);
      return result;
    } catch (error) {
      metrics.publishFailures.inc();
      if (error instanceof SwitchboardError) throw error;
      this.options.log.warn("publish failed", { topic, ...errorFields(error) });
      throw unreachable();
    }
  }

  /** Forgets the creation windows that ended (the gateway's periodic sweep). */
  sweep(): void {
    this.creations.sweep();
  }

  /**
   * True when the topic has history, or another user's subscriber here. Asked without creating
   * anything: a publish refused past the budget must leave no trace (not even an epoch) in the broker.
   */
  private async exists(topic: string, userId: string): Promise<boolean> {
    if (this.options.followedByOthers(topic, userId)) return true;
    return (await this.options.broker.latestSeq(topic)) > 0;
  }

  /**
   * Broadcast is best effort and says nothing of failures: refuse up front while the broker is down.
   * On a webhook namespace the event (without seq and epoch) is stored before the ack, as for an
   * ordered topic.
   */
  private async publishEphemeral(topic: string, input: PublishInput): Promise<null> {
    const { broker, metrics } = this.options;
    if (!broker.healthy) {
      metrics.publishFailures.inc();
      throw unreachable();
    }
    await broker.broadcast(topic, ephemeralFrame(topic, input));
    metrics.publications.inc(input.from === "server" ? "api" : "ws");
    await this.options.events?.published(topic, input, null);
    return null;
  }
}
