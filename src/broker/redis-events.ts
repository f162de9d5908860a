/**
 * What the Redis broker's subscriber links hear, handed on as BrokerEvents: on a topic's channel
 * a publication ("p<seq>:<epoch>:<frame>") or an ephemeral frame ("e<frame>"), on the control
 * channel a control message (canaries are the links' own and stop here), and a link that came back
 * with its topics resubscribed. Events run the gateway's code: a handler that throws is logged and
 * never breaks a link's message loop.
 */
import type { BrokerEvents, ControlMessage } from "./broker.ts";
import { decodePayload, redisKeys, topicOfChannel } from "./redis-keys.ts";
import type { LogFn } from "../redis/connection.ts";

const noEvents: BrokerEvents = {
  onPublication() {},
  onEphemeral() {},
  onControl() {},
  onReconnect() {},
};

export class BrokerEventRouter {
  /** Where events go; none before `start` and after `close`. */
  private events: BrokerEvents = noEvents;

  constructor(private readonly log: LogFn) {}

  listen(events: BrokerEvents): void {
    this.events = events;
  }

  stop(): void {
    this.events = noEvents;
  }

  /** A subscriber link is back with `topics` resubscribed and confirmed: the hub repairs them. */
  restored(topics: string[]): void {
    this.log("info", `redis subscriber link is back (${topics.length} topics resubscribed): repairing from history`);
    this.emit(() => this.events.onReconnect(topics));
  }

  message(channel: string, payload: string): void {
    const topic = topicOfChannel(channel);
    if (topic !== undefined) {
      const decoded = decodePayload(topic, payload);
      if (decoded === undefined) return;
      // Once per publication: no closure for `emit`, the same guard.
      try {
        if ("seq" in decoded) this.events.onPublication(decoded);
        else this.events.onEphemeral(topic, decoded.frame);
      } catch (error) {
        this.threw(error);
      }
      return;
    }
    if (channel !== redisKeys.control) return;
    let message: ControlMessage;
    try {
      message = JSON.parse(payload) as ControlMessage;
    } catch {
      this.log("warn", "ignored a control message that is not JSON");
      return;
    }
    if (message.type !== "canary") this.emit(() => this.events.onControl(message));
  }

  private emit(call: () => void): void {
    try {
      call();
    } catch (error) {
      this.threw(error);
    }
  }

  private threw(error: unknown): void {
    this.log("error", `broker event handler threw: ${(error as Error).message}`);
  }
}
