/**
 * From an app's verified JWT payload (or its connect answer) to a Switchboard identity (SPEC §4):
 * where the user id, the display name and the capabilities are (AUTH_USER_CLAIM, AUTH_NAME_CLAIM,
 * AUTH_CAPS_CLAIM), and what each may hold. Pure functions.
 */
import { Caps } from "./caps.ts";
import { parseJson } from "../protocol/parse.ts";
import type { User } from "../protocol/frames.ts";

/** How an identity was established; `app-token` and `app-cookie` carry an app JWT. */
export type AppVia = "app-token" | "app-cookie" | "connect";

/** Who a socket is for, as the app said so. Times are epoch seconds. */
export interface AppIdentity {
  user: User;
  /** A session id namespaced by source (`app:…`, `connect:…`), never a Switchboard session id. */
  sid: string;
  /** null: no expiry (a connect answer without `expiresIn`), the socket lives as a cookie session does. */
  exp: number | null;
  /** null: the token had no `iat`, so it counts as issued before any revocation of its user. */
  iat: number | null;
  /** Capabilities (SPEC §5); undefined means the namespaces' defaults. */
  caps: Caps | undefined;
  via: AppVia;
}

export interface ClaimNames {
  user: string;
  name: string;
  caps: string;
}

/**
 * A user id is the claim's text and becomes the inbox `user:<id>`, so it must fit a topic name:
 * at most 123 characters of the topic alphabet (ids such as `auth0|64f1c2` or `ana@example.com` do).
 */
export const USER_ID = /^[A-Za-z0-9:_.@|+=-]{1,123}$/;
export const USER_ID_RULE = "the user id must be 1-123 characters of A-Z a-z 0-9 : _ . @ | + = -";
const MAX_NAME = 256;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A claim by its whole name first (`https://example.com/caps`), otherwise by a dotted path into
 * nested objects (`app.caps`). Own properties only: `__proto__` or `constructor` reach nothing.
 */
export function readClaim(payload: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(payload, name)) return payload[name];
  if (!name.includes(".")) return undefined;
  let current: unknown = payload;
  for (const part of name.split(".")) {
    if (!isObject(current) || !Object.hasOwn(current, part)) return undefined;
    current = current[part];
  }
  return current;
}

/**
 * The user id's text: a string as it is, a whole number as its decimal digits (Django's `user_id`,
 * some Laravel `sub`s are numbers: `42` and `"42"` are the same user); anything else is none.
 */
export function idText(claim: unknown): string | null {
  if (typeof claim === "string") return claim;
  return Number.isSafeInteger(claim) ? String(claim) : null;
}

/** A display name as the app gave it, when it is one (non-blank text of at most 256 characters); else the id. */
export function displayName(raw: unknown, id: string): string {
  return typeof raw === "string" && raw.trim().length > 0 && raw.length <= MAX_NAME ? raw : id;
}

/** The user and caps a payload names, or a sentence saying what is wrong with it. */
export function mapClaims(payload: Record<string, unknown>, names: ClaimNames): { user: User; caps: Caps | undefined } | { error: string } {
  const id = idText(readClaim(payload, names.user));
  if (id === null || !USER_ID.test(id)) return { error: `claim ${names.user}: ${USER_ID_RULE}` };
  const name = displayName(readClaim(payload, names.name), id);
  const rawCaps = readClaim(payload, names.caps);
  if (rawCaps === undefined || rawCaps === null) return { user: { id, name }, caps: undefined };
  const caps = Caps.safeParse(typeof rawCaps === "string" ? parseJson(rawCaps) : rawCaps);
  if (!caps.success) return { error: `claim ${names.caps}: ${caps.error.issues[0]?.message ?? "invalid caps"}` };
  return { user: { id, name }, caps: caps.data };
}
