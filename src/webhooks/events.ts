/**
 * Webhook events (SPEC §6): what Switchboard POSTs to WEBHOOK_URL, and the ordering key that
 * decides which events must be sent one after the other.
 */

export const WEBHOOK_EVENT_TYPES = ["presence.join", "presence.leave", "user.online", "user.offline", "message.published"] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** The body of every webhook request, exactly as sent: `{id, type, at, data}`. */
export interface WebhookEvent {
  /** Stable across retries and across the machine that sends it: the receiver deduplicates by it. */
  id: string;
  type: WebhookEventType;
  /** When it happened, epoch milliseconds (the clock of the machine that saw it). */
  at: number;
  data: unknown;
}

/** A new event with a fresh, time-ordered id (`evt_<uuid v7>`). */
export function newEvent(type: WebhookEventType, data: unknown, at = Date.now()): WebhookEvent {
  return { id: `evt_${Bun.randomUUIDv7()}`, type, at, data };
}

/**
 * Ordering keys. Events with one key are sent one at a time, in the order they were appended; a
 * failing event holds back the later events of its key and of no other key.
 * - presence.* and message.published: their topic;
 * - user.online / user.offline: their user (they are not about a topic).
 */
export const orderingKey = {
  topic: (topic: string) => `t:${topic}`,
  user: (userId: string) => `u:${userId}`,
};
