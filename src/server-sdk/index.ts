/**
 * `switchboard/server`: the server SDK for an app's backend (SPEC §6), on Bun and Node 20+.
 * Built to dist/server/ (JavaScript + declarations) by `bun install` (the `prepare` script).
 */
export { SwitchboardApi, SwitchboardApiError, type SwitchboardApiOptions } from "./api.ts";
export { signToken, type SignTokenInput } from "./token.ts";
export { verifyWebhook, WebhookVerificationError, type WebhookEvent } from "./webhook.ts";
export type * from "../protocol/api.ts";
export type { Caps, CapAction } from "../auth/caps.ts";
