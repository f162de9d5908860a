/**
 * App tokens (SPEC §4): JWTs signed by the application or its identity provider — asymmetric
 * keys from AUTH_JWKS_URL (RS256, PS256, ES256, EdDSA) or the HS256 AUTH_JWT_SECRET — checked with
 * jose: `exp` required, 5 s clock tolerance, AUTH_ISSUER / AUTH_AUDIENCE when set.
 *
 * Refused before any key is looked up (cheap, and no JWKS refetch for them): a token longer than
 * MAX_TOKEN_CHARS, an `alg` this configuration does not accept (`none`; HS256 where only a JWKS is
 * configured; RS256 where only a secret is), a payload without `exp`, already expired, or for
 * another issuer or audience.
 */
import type { JWTPayload } from "jose";
import { decodeJwt } from "jose/jwt/decode";
import { decodeProtectedHeader } from "jose/decode/protected_header";
import { jwtVerify } from "jose/jwt/verify";
import { createHash } from "node:crypto";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { mapClaims, type AppIdentity, type ClaimNames } from "./claims.ts";
import { RemoteKeySet } from "./jwks.ts";

/** Longer than any real ID token (Auth0's are ~1 kB); the same bound as the `auth` frame. */
export const MAX_TOKEN_CHARS = 8192;
export const CLOCK_TOLERANCE_S = 5;
const ASYMMETRIC = ["RS256", "PS256", "ES256", "EdDSA", "Ed25519"];

export type AppTokenResult = { ok: true; identity: AppIdentity } | { ok: false; reason: string };

type AppTokenConfig = Pick<Config, "authJwksUrl" | "authJwtSecret" | "authIssuer" | "authAudience" | "authUserClaim" | "authNameClaim" | "authCapsClaim">;

export class AppTokenVerifier {
  private readonly keySet: RemoteKeySet | null;
  private readonly secret: Uint8Array | null;
  private readonly claims: ClaimNames;
  private readonly now: () => number;

  constructor(
    private readonly config: AppTokenConfig,
    options: { log: Logger; now?: () => number },
  ) {
    this.now = options.now ?? Date.now;
    this.keySet = config.authJwksUrl === undefined ? null : new RemoteKeySet(new URL(config.authJwksUrl), { log: options.log, now: this.now });
    this.secret = config.authJwtSecret === undefined ? null : new TextEncoder().encode(config.authJwtSecret);
    this.claims = { user: config.authUserClaim, name: config.authNameClaim, caps: config.authCapsClaim };
  }

  /** True when app tokens can be accepted at all (a JWKS or a secret is configured). */
  get enabled(): boolean {
    return this.keySet !== null || this.secret !== null;
  }

  /** Fetches the key set once; a provider that is down only logs a warning. */
  async start(): Promise<void> {
    await this.keySet?.start();
  }

  async verify(jwt: string, via: "app-token" | "app-cookie" = "app-token"): Promise<AppTokenResult> {
    if (!this.enabled) return { ok: false, reason: "app tokens are not configured" };
    if (jwt.length === 0 || jwt.length > MAX_TOKEN_CHARS) return { ok: false, reason: "token too large" };
    const pre = this.precheck(jwt);
    if (pre !== null) return { ok: false, reason: pre };
    let payload: JWTPayload;
    try {
      const secret = this.secret;
      const keySet = this.keySet;
      ({ payload } = await jwtVerify(jwt, async (header, token) => (header.alg === "HS256" ? secret! : keySet!.lookup(header, token)), {
        algorithms: this.algorithms(),
        issuer: this.config.authIssuer,
        audience: this.config.authAudience,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ["exp"],
        currentDate: new Date(this.now()),
      }));
    } catch (error) {
      return { ok: false, reason: reasonOf(error) };
    }
    const mapped = mapClaims(payload as Record<string, unknown>, this.claims);
    if ("error" in mapped) return { ok: false, reason: mapped.error };
    return {
      ok: true,
      identity: {
        user: mapped.user,
        caps: mapped.caps,
        exp: payload.exp!,
        // Without `iat` the token cannot show it came after a revocation of its user: null makes
        // the revocation check fail closed (SPEC §6 `revoke`).
        iat: typeof payload.iat === "number" ? payload.iat : null,
        sid: `app:${sessionOf(payload, jwt)}`,
        via,
      },
    };
  }

  private algorithms(): string[] {
    return [...(this.keySet !== null ? ASYMMETRIC : []), ...(this.secret !== null ? ["HS256"] : [])];
  }

  /** What can be refused from the unverified token alone, or null. */
  private precheck(jwt: string): string | null {
    let alg: unknown;
    let payload: JWTPayload;
    try {
      alg = decodeProtectedHeader(jwt).alg;
      payload = decodeJwt(jwt);
    } catch {
      return "malformed token";
    }
    if (typeof alg !== "string" || !this.algorithms().includes(alg)) return `alg ${String(alg)} not accepted`;
    if (typeof payload.exp !== "number") return "token without exp";
    if (payload.exp + CLOCK_TOLERANCE_S <= this.now() / 1000) return "token expired";
    if (this.config.authIssuer !== undefined && payload.iss !== this.config.authIssuer) return "wrong issuer";
    const aud = this.config.authAudience;
    if (aud !== undefined && !(payload.aud === aud || (Array.isArray(payload.aud) && payload.aud.includes(aud)))) return "wrong audience";
    return null;
  }
}

/** The token's own session (`sid`, else `jti`), else a digest of the token: never the token itself. */
function sessionOf(payload: JWTPayload, jwt: string): string {
  const sid = (payload as { sid?: unknown }).sid;
  if (typeof sid === "string" && sid.length > 0 && sid.length <= 128) return sid;
  if (typeof payload.jti === "string" && payload.jti.length > 0 && payload.jti.length <= 128) return payload.jti;
  return createHash("sha256").update(jwt).digest("base64url").slice(0, 22);
}

/** jose's error as a short reason for logs and metrics (never the token). */
function reasonOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return "token expired";
    case "ERR_JWKS_NO_MATCHING_KEY":
      return "unknown key";
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return "bad signature";
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return "alg not accepted";
    case "ERR_JWT_CLAIM_VALIDATION_FAILED": {
      const claim = (error as { claim?: unknown }).claim;
      return typeof claim === "string" ? `claim ${claim} invalid` : "claim invalid";
    }
    default:
      return "invalid token";
  }
}
