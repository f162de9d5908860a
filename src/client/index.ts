/**
 * The Switchboard client SDK for browsers and Bun, with no runtime dependencies.
 * Usage: docs/client.md. Served to browsers as an ES module at GET /client.js.
 */
import { SwitchboardClient } from "./client.ts";
import type { ClientOptions } from "./options.ts";

export { SwitchboardClient } from "./client.ts";
export type { ClientEvents, ClientState, PublishResult, TokenRequest, Welcome } from "./events.ts";
export type { ClientOptions } from "./options.ts";
export type { RateLimit } from "./pacer.ts";
export { SwitchboardClientError } from "./errors.ts";
export type { ClientErrorCode } from "./errors.ts";
export { Subscription, classify } from "./subscription.ts";
export type { Message, PresenceEvent, ResyncInfo, SubscriptionHandlers, SubscriptionState, UnsubscribedInfo, Verdict } from "./subscription.ts";
export { backoffCeiling, backoffDelay, decideReconnect, DEFAULT_RECONNECT } from "./backoff.ts";
export type { CloseInfo, ReconnectDecision, ReconnectOptions, StopReason } from "./backoff.ts";
export { closeRule, closeRules } from "../protocol/codes.ts";
export type { CloseRule, ReconnectAdvice } from "../protocol/codes.ts";
export type { Position, PresenceMember, User } from "../protocol/frames.ts";

/** Creates a client; it connects at once unless `autoConnect: false`. */
export function createClient(options: ClientOptions): SwitchboardClient {
  return new SwitchboardClient(options);
}
