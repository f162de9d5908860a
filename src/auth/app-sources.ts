/**
 * The identity sources of SPEC §4 (see credentials.ts for how sources are tried):
 * - tokens: Switchboard's own first, then app tokens (AUTH_JWKS_URL / AUTH_JWT_SECRET) — for the
 *   first-message `auth` frame, `refresh` and `Authorization: Bearer` on /auth/ticket;
 * - the app's own JWT cookie (AUTH_COOKIE);
 * - AUTH_CONNECT_URL: the app decides a request that carries cookies and nothing else we can check.
 * A refusal's detailed reason (`wrong audience`, `unknown key`, …) goes to `note`, never the credential.
 */
import type { IdentitySource, Identity } from "./credentials.ts";
import type { AppIdentity } from "./claims.ts";
import type { AppTokenVerifier } from "./app-tokens.ts";
import type { ConnectClient } from "./connect.ts";
import { tokenSource } from "./sources.ts";
import { ISSUER as SWITCHBOARD_ISSUER, type SessionSigner } from "./sessions.ts";
import { decodeJwt } from "jose/jwt/decode";

function issuerOf(jwt: string): unknown {
  try {
    return decodeJwt(jwt).iss;
  } catch {
    return undefined;
  }
}

/** Told why an app credential was refused (a log line, a metric). */
export type NoteRefusal = (reason: string, via: AppIdentity["via"]) => void;

function toIdentity(app: AppIdentity): Identity {
  return { user: app.user, sid: app.sid, exp: app.exp, iat: app.iat, caps: app.caps ?? null, via: app.via };
}

/** A token is Switchboard's (`/auth/token`, `/api/tokens`) or, failing that, the app's. */
export function anyTokenSource(signer: SessionSigner, verifier: AppTokenVerifier, note: NoteRefusal): IdentitySource {
  const own = tokenSource(signer);
  return {
    find: own.find,
    async check(token) {
      const identity = await own.check(token);
      if (identity !== null) return identity;
      const result = await verifier.verify(token, "app-token");
      if (result.ok) return toIdentity(result.identity);
      // A refused Switchboard token (expired, revoked) is not an app token gone wrong: no note.
      if (issuerOf(token) !== SWITCHBOARD_ISSUER) note(result.reason, "app-token");
      return null;
    },
    refusal: own.refusal,
  };
}

/** The value of cookie `name` in a Cookie header, or null. */
export function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      return value === "" ? null : value;
    }
  }
  return null;
}

export function appCookieSource(verifier: AppTokenVerifier, name: string, note: NoteRefusal): IdentitySource {
  return {
    find: (presented) => readCookie(presented.cookie, name),
    async check(jwt) {
      const result = await verifier.verify(jwt, "app-cookie");
      if (result.ok) return toIdentity(result.identity);
      note(result.reason, "app-cookie");
      return null;
    },
    refusal: { reason: "bad_app_cookie", message: "invalid or expired application cookie" },
  };
}

/**
 * Throws `unavailable` (503) when the app does not answer, `rate_limited` (429) when the address
 * already waits for MAX_CONNECTIONS_PER_IP answers; null (401) when the app refuses.
 */
export function connectSource(client: ConnectClient, note: NoteRefusal): IdentitySource {
  return {
    find: (presented) => (presented.cookie !== undefined && presented.cookie.trim() !== "" ? presented.cookie : null),
    async check(cookie, presented) {
      const identity = await client.identify(cookie, presented?.ip ?? "unknown");
      if (identity !== null) return toIdentity(identity);
      note("refused by AUTH_CONNECT_URL", "connect");
      return null;
    },
    refusal: { reason: "connect_refused", message: "the application did not accept this session" },
  };
}
