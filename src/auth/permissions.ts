/**
 * Who may do what with a topic (SPEC §5): one decision point for WebSocket frames and the HTTP
 * API. `decide` is pure (table-tested in permissions.test.ts); `Permissions.authorize` adds the
 * app's answer for `app` namespaces (AUTHZ_URL) and turns a refusal into a coded error.
 *
 * - A credential with caps gets exactly what they grant, whatever its namespace allows, plus
 *   subscribing (and, with `since`, reading the history of) its own inbox.
 * - A credential without caps gets its namespace's defaults: `presence` and `history` then follow
 *   `subscribe` (whoever may subscribe may list the members and resume with `since`).
 * - A grant never overrides a namespace's `none` (subscribe) or `server` (publish), never reaches a
 *   topic outside every namespace, and never turns presence on where the namespace has it off.
 * - The server API acts as the server: client rules do not apply; the topic must still be valid and
 *   inside a namespace, and a namespace without presence has no member list for anyone.
 */
import type { User } from "../protocol/frames.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { inboxOf, isValidTopic, TOPIC_RULE } from "../protocol/topics.ts";
import type { CapAction, Caps } from "./caps.ts";
import type { Namespace, Namespaces } from "./namespaces.ts";

export type Action = CapAction;

/** Who is acting: a user with the caps of its credential (null: none), or the server API. */
export type Actor = { kind: "server" } | { kind: "user"; user: User; caps: Caps | null };

/** What the app is asked (AUTHZ_URL): reading questions are asked as `subscribe`. */
export type AppQuestion = "subscribe" | "publish";

export type Decision =
  | { verdict: "allow" }
  | { verdict: "forbidden"; reason: string }
  | { verdict: "ask"; question: AppQuestion };

const ALLOW: Decision = { verdict: "allow" };
const forbid = (reason: string): Decision => ({ verdict: "forbidden", reason });

/** Does a caps pattern (exact, `prefix*`, or `*`) cover the topic? */
export function patternMatches(pattern: string, topic: string): boolean {
  return pattern.endsWith("*") ? topic.startsWith(pattern.slice(0, -1)) : pattern === topic;
}

/** Every action the caps grant on the topic (the union over the patterns that cover it). */
export function grantedActions(caps: Caps, topic: string): Set<CapAction> {
  const granted = new Set<CapAction>();
  for (const [pattern, actions] of Object.entries(caps)) {
    if (patternMatches(pattern, topic)) for (const action of actions) granted.add(action);
  }
  return granted;
}

/** The topic `<ns>:<user id>` that `owner` allows (compared in place: every handshake's inbox asks, twice). */
function isOwner(ns: Namespace, userId: string, topic: string): boolean {
  const name = ns.name;
  return topic.length === name.length + 1 + userId.length && topic.startsWith(name) && topic.charCodeAt(name.length) === 58 /* ":" */ && topic.endsWith(userId);
}

/** What the namespace says about the action: the ceiling no grant lifts. */
function ceiling(ns: Namespace, action: Action): Decision | null {
  if (action === "subscribe" && ns.subscribe === "none") return forbid(`nobody subscribes to ${ns.name}:*`);
  if (action === "publish" && ns.publish === "server") return forbid(`only the server API publishes to ${ns.name}:*`);
  if (action === "presence" && !ns.presence) return forbid(`${ns.name}:* keeps no presence`);
  return null;
}

/** How a refusal names the action (built only for a refusal: every handshake's inbox is allowed twice). */
function verbOf(action: Action): string {
  return action === "publish" ? "publish to" : action === "subscribe" ? "subscribe to" : `read the ${action} of`;
}

/** A credential without caps: the namespace's rule for the action. */
function byNamespace(ns: Namespace, userId: string, action: Action, topic: string): Decision {
  const rule = action === "publish" ? ns.publish : ns.subscribe;
  switch (rule) {
    case "any":
      return ALLOW;
    case "owner":
      return isOwner(ns, userId, topic) ? ALLOW : forbid(`only its owner may ${verbOf(action)} ${topic}`);
    case "app":
      return { verdict: "ask", question: action === "publish" ? "publish" : "subscribe" };
    case "caps":
      return forbid(`${ns.name}:* needs a grant to ${verbOf(action)} it`);
    case "none":
    case "server":
      return forbid(`no client may ${verbOf(action)} ${ns.name}:*`);
  }
}

/**
 * The decision for a valid topic name, without asking anybody. `bad_request` (a malformed name)
 * is the caller's: see `Permissions.authorize`.
 */
export function decide(namespaces: Namespaces, actor: Actor, action: Action, topic: string): Decision {
  const ns = namespaces.of(topic);
  if (ns === null) return forbid(`no namespace allows ${topic}`);
  const capped = ceiling(ns, action);
  if (actor.kind === "server") return action === "presence" && capped !== null ? capped : ALLOW;
  if (capped !== null) return capped;
  const { user, caps } = actor;
  if (caps === null) return byNamespace(ns, user.id, action, topic);
  if ((action === "subscribe" || action === "history") && topic === inboxOf(user.id)) return ALLOW;
  return grantedActions(caps, topic).has(action) ? ALLOW : forbid(`no grant to ${action} ${topic}`);
}

/** Asks the app (AUTHZ_URL); see auth/authz.ts. Rejects with `unavailable` when it cannot tell. */
export interface AppAuthority {
  allows(user: User, topic: string, action: AppQuestion): Promise<boolean>;
}

export class Permissions {
  constructor(
    readonly namespaces: Namespaces,
    private readonly app: AppAuthority | null,
  ) {}

  /**
   * The one decision point. Resolves with the topic's namespace when the actor may act; throws
   * SwitchboardError `bad_request` (malformed name), `forbidden`, or `unavailable` (the app could
   * not answer: an outage is never a refusal).
   */
  async authorize(actor: Actor, action: Action, topic: unknown): Promise<Namespace> {
    const decision = this.check(actor, action, topic);
    const named = topic as string; // valid: `check` threw otherwise
    if (decision.verdict === "ask") {
      if (this.app === null || actor.kind !== "user") throw new SwitchboardError(ErrorCode.unavailable, "no AUTHZ_URL to ask");
      if (!(await this.app.allows(actor.user, named, decision.question))) {
        throw new SwitchboardError(ErrorCode.forbidden, `the app does not allow ${actor.user.id} to ${decision.question} ${named}`);
      }
    }
    return this.namespaces.of(named)!;
  }

  /**
   * The same decision without a promise, for the hot frame (a publish): the topic's namespace when
   * the rules allow the action, null when only the app can tell (then call `authorize`, which asks
   * it); throws `bad_request` or `forbidden` as `authorize` does.
   */
  authorizeNow(actor: Actor, action: Action, topic: unknown): Namespace | null {
    return this.check(actor, action, topic).verdict === "ask" ? null : this.namespaces.of(topic as string)!;
  }

  /** The rules' decision; throws `bad_request` (malformed name) or `forbidden`. */
  private check(actor: Actor, action: Action, topic: unknown): Exclude<Decision, { verdict: "forbidden" }> {
    if (!isValidTopic(topic)) throw new SwitchboardError(ErrorCode.badRequest, TOPIC_RULE);
    const decision = decide(this.namespaces, actor, action, topic);
    if (decision.verdict === "forbidden") throw new SwitchboardError(ErrorCode.forbidden, decision.reason);
    return decision;
  }

  /**
   * The same decision for the server API, which never asks the app: synchronous. Returns the
   * topic's namespace; throws `bad_request` (malformed) or `forbidden` (outside every namespace,
   * or the member list of a namespace without presence).
   */
  asServer(action: Action, topic: unknown): Namespace {
    if (!isValidTopic(topic)) throw new SwitchboardError(ErrorCode.badRequest, TOPIC_RULE);
    const decision = decide(this.namespaces, { kind: "server" }, action, topic);
    if (decision.verdict !== "allow") throw new SwitchboardError(ErrorCode.forbidden, decision.verdict === "forbidden" ? decision.reason : "refused");
    return this.namespaces.of(topic)!;
  }

  /**
   * The rules' verdict without asking the app (`ask`: only the app can tell; a malformed name is
   * `forbidden`): `allow` joins the inbox at welcome, `forbidden` is what an in-band refresh's new
   * caps take away from the socket's subscriptions (SPEC §4).
   */
  verdictNow(actor: Actor, action: Action, topic: string): Decision["verdict"] {
    return isValidTopic(topic) ? decide(this.namespaces, actor, action, topic).verdict : "forbidden";
  }

  /**
   * Whether a socket admitted to the topic reads its `presence.join` / `presence.leave` frames
   * (SPEC §5: reading presence is the `presence` action). An `app` question counts as allowed: a
   * credential without caps reads presence where it may subscribe, and the socket is subscribed.
   */
  readsPresence(actor: Actor, topic: string): boolean {
    return isValidTopic(topic) && decide(this.namespaces, actor, "presence", topic).verdict !== "forbidden";
  }

  /** The namespace of a valid topic, or null: outside every namespace. */
  namespaceOf(topic: string): Namespace | null {
    return this.namespaces.of(topic);
  }
}
