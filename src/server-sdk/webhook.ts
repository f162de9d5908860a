/**
 * `verifyWebhook`: checks a webhook's `Switchboard-Signature` against its raw body and returns the
 * parsed event (SPEC §6). Refuses a `t` more than `toleranceS` (300) from now, either way.
 * Pass the body exactly as received (before any JSON parsing): the signature covers its bytes.
 */
import { SignatureError, verifySignature } from "../auth/signature.ts";
import type { MessageFrame, User } from "../protocol/frames.ts";

export type WebhookEvent =
  | { id: string; type: "presence.join" | "presence.leave"; at: number; data: { topic: string; user: User } }
  | { id: string; type: "user.online" | "user.offline"; at: number; data: { user: User } }
  | { id: string; type: "message.published"; at: number; data: MessageFrame };

export class WebhookVerificationError extends Error {
  override name = "WebhookVerificationError";
}

export function verifyWebhook(
  rawBody: string | Uint8Array,
  header: string | null | undefined,
  secret: string,
  options: { toleranceS?: number } = {},
): WebhookEvent {
  const body = typeof rawBody === "string" ? rawBody : new TextDecoder().decode(rawBody);
  try {
    verifySignature(body, header, secret, options.toleranceS ?? 300);
  } catch (error) {
    if (error instanceof SignatureError) throw new WebhookVerificationError(error.message);
    throw error;
  }
  let event: unknown;
  try {
    event = JSON.parse(body);
  } catch {
    throw new WebhookVerificationError("the body is not JSON");
  }
  const e = event as Partial<WebhookEvent> | null;
  if (typeof e !== "object" || e === null || typeof e.id !== "string" || typeof e.type !== "string" || typeof e.at !== "number") {
    throw new WebhookVerificationError("the body is not a Switchboard event");
  }
  return e as WebhookEvent;
}
