/**
 * Topic names and who may do what with them (SPEC "Topics and permissions").
 * Pure functions: no I/O, unit-tested in topics.test.ts.
 */
import { ErrorCode, SwitchboardError } from "./codes.ts";

/** Also `@ | + =`, so that identity-provider user ids (`auth0|64f1c2`, `ana@example.com`) work as inboxes. */
export const TOPIC_PATTERN = /^[A-Za-z0-9:_.@|+=-]{1,128}$/;

/** The sentence a malformed name gets (`bad_request`). */
export const TOPIC_RULE = "topic must match ^[A-Za-z0-9:_.@|+=-]{1,128}$";

export type Namespace = "room" | "user" | "broadcast";

/** Who is acting: an authenticated user, or the server-to-server API. */
export type Actor = { kind: "user"; userId: string } | { kind: "server" };

export function isValidTopic(topic: unknown): topic is string {
  return typeof topic === "string" && TOPIC_PATTERN.test(topic);
}

/** The namespace of a valid topic, or null when it is outside the three the SPEC knows. */
export function namespaceOf(topic: string): Namespace | null {
  const colon = topic.indexOf(":");
  if (colon < 0) return null;
  const ns = topic.slice(0, colon);
  return ns === "room" || ns === "user" || ns === "broadcast" ? ns : null;
}

/** The personal inbox of a user: only that user may subscribe, anyone may publish. */
export function inboxOf(userId: string): string {
  return `user:${userId}`;
}

export type Action = "subscribe" | "publish";

/**
 * Throws `bad_request` for a malformed name and `forbidden` for a valid name the actor may not use.
 * The server API may publish anywhere inside the namespaces and may read presence anywhere.
 */
export function authorize(actor: Actor, action: Action, topic: unknown): asserts topic is string {
  if (!isValidTopic(topic)) {
    throw new SwitchboardError(ErrorCode.badRequest, TOPIC_RULE);
  }
  const ns = namespaceOf(topic);
  if (ns === null) throw new SwitchboardError(ErrorCode.forbidden, `no namespace allows ${topic}`);
  if (actor.kind === "server") return;
  if (ns === "room") return;
  if (ns === "user") {
    if (action === "publish" || topic === inboxOf(actor.userId)) return;
    throw new SwitchboardError(ErrorCode.forbidden, "only its owner may subscribe to an inbox");
  }
  if (action === "subscribe") return; // broadcast:*
  throw new SwitchboardError(ErrorCode.forbidden, "only the server API publishes to broadcast:*");
}
