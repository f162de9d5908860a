/**
 * In-band refresh (SPEC §4): `{type:"refresh", token, ref?}` on an open socket whose credential
 * expires. The token is checked like a first-message one (Switchboard's or the app's). Valid and
 * for the same user → the socket's new identity (the caller acks `{ref, expiresAt}`); for another
 * user → close 4001; invalid → `error unauthorized` and the socket keeps its old expiry, so the
 * client may try again until then.
 */
import { Close, ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { errorFields } from "../log.ts";
import type { Identity, Via } from "../auth/credentials.ts";
import type { User } from "../protocol/frames.ts";
import type { ConnectionHost } from "./connection-host.ts";

export type RefreshVerdict = { identity: Identity & { exp: number } } | { close: number; reason: string };

export interface Refreshing {
  readonly id: string;
  readonly ip: string;
  readonly via: Via;
  readonly user: User | null;
  readonly expiresAt: number | null;
}

/** Throws a SwitchboardError for a refusal the socket survives. */
export async function checkRefresh(host: ConnectionHost, conn: Refreshing, token: string): Promise<RefreshVerdict> {
  // The built-in cookie session is not refreshed in-band: it lives as it always did (SPEC §4).
  if (conn.via === "cookie" || conn.expiresAt === null || conn.user === null) {
    throw new SwitchboardError(ErrorCode.badRequest, "this connection's credential does not expire: nothing to refresh");
  }
  const who = { connectionId: conn.id, ip: conn.ip };
  let outcome;
  try {
    outcome = await host.authenticate(token);
  } catch (error) {
    host.log.warn("refresh check failed", { connectionId: conn.id, ...errorFields(error) });
    throw new SwitchboardError(ErrorCode.unavailable, "the token could not be checked; try again");
  }
  if (outcome?.ok !== true || outcome.identity.exp === null) {
    host.noteAuthFailure("bad_refresh", who);
    throw new SwitchboardError(ErrorCode.unauthorized, outcome?.ok === false ? outcome.message : "invalid or expired token");
  }
  if (outcome.identity.user.id !== conn.user.id) {
    host.noteAuthFailure("refresh_other_user", who);
    return { close: Close.unauthorized, reason: "refresh for another user" };
  }
  return { identity: { ...outcome.identity, exp: outcome.identity.exp } };
}
