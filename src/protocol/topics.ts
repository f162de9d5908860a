/**
 * Topic names (SPEC §3): what a valid name is. Who may do what with a topic is decided in
 * auth/permissions.ts, by its namespace (auth/namespaces.ts). Pure; unit-tested in topics.test.ts.
 */

/** Also `@ | + =`, so that identity-provider user ids (`auth0|64f1c2`, `ana@example.com`) work as inboxes. */
export const TOPIC_PATTERN = /^[A-Za-z0-9:_.@|+=-]{1,128}$/;

/** The sentence a malformed name gets (`bad_request`). */
export const TOPIC_RULE = "topic must match ^[A-Za-z0-9:_.@|+=-]{1,128}$";

export function isValidTopic(topic: unknown): topic is string {
  return typeof topic === "string" && TOPIC_PATTERN.test(topic);
}

/** The personal inbox of a user (SPEC §3): joined at welcome, its owner's to read. */
export function inboxOf(userId: string): string {
  return `user:${userId}`;
}
