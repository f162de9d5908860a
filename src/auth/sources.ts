/**
 * The built-in identity sources, in the order the server tries them: a single-use ticket, a
 * token (the JWT from /auth/token, as a bearer header or a first-message `auth` frame), the
 * session cookie. Each is one IdentitySource (credentials.ts).
 */
import type { Identity, IdentitySource } from "./credentials.ts";
import type { Claims, SessionSigner } from "./sessions.ts";
import type { TicketStore } from "../stores/stores.ts";
import { readSessionCookie } from "./cookie.ts";

/** Longest ticket looked up; anything longer is not one of ours. */
const MAX_TICKET = 256;
/** Longest token verified. */
const MAX_TOKEN = 8192;

export function ticketSource(tickets: TicketStore): IdentitySource {
  return {
    find: (presented) => presented.ticket ?? null,
    async check(ticket) {
      if (ticket.length === 0 || ticket.length > MAX_TICKET) return null;
      const grant = await tickets.redeem(ticket);
      if (grant === null) return null;
      // A ticket socket lives as long as the credential that minted it: it expires at that
      // credential's expiry and closes with its session's revocation (SPEC §8).
      return { user: grant.user, sid: grant.sid, exp: grant.exp ?? null, iat: grant.iat ?? null, caps: grant.caps ?? null, via: "ticket" };
    },
    refusal: { reason: "bad_ticket", message: "unknown, expired or used ticket" },
  };
}

export function tokenSource(signer: SessionSigner): IdentitySource {
  return {
    find: (presented) => presented.token ?? null,
    async check(token) {
      if (token.length === 0 || token.length > MAX_TOKEN) return null;
      const claims = await signer.verify("token", token);
      return claims === null ? null : { user: claims.user, sid: claims.sid, exp: claims.exp, iat: claims.iat, caps: claims.caps, via: "token" };
    },
    refusal: { reason: "bad_token", message: "invalid or expired token" },
  };
}

function cookieIdentity(claims: Claims): Identity {
  return { user: claims.user, sid: claims.sid, exp: claims.exp, iat: claims.iat, caps: claims.caps, via: "cookie" };
}

export function sessionCookieSource(signer: SessionSigner): IdentitySource {
  return {
    find: (presented) => readSessionCookie(presented.cookie, presented.secure === true),
    async check(jwt) {
      const claims = await signer.verify("session", jwt);
      return claims === null ? null : cookieIdentity(claims);
    },
    checkNow(jwt) {
      const claims = signer.verifiedNow("session", jwt);
      return claims === undefined ? undefined : cookieIdentity(claims);
    },
    refusal: { reason: "bad_cookie", message: "invalid or revoked session" },
  };
}
