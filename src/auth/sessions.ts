/**
 * Sessions and tokens are HS256 JWTs signed with SESSION_SECRET (jose). Each carries a session
 * id `sid` that logout revokes. The audience tells a cookie session from a first-message token
 * so one cannot stand in for the other.
 */
// jose by subpath: its index also loads JWE, key generation and import (~5 ms of start-up).
import { SignJWT } from "jose/jwt/sign";
import { jwtVerify } from "jose/jwt/verify";
import type { User } from "../protocol/frames.ts";
import { Caps } from "./caps.ts";

export type CredentialKind = "session" | "token";

export interface Claims {
  user: User;
  sid: string;
  /** Expiry, epoch seconds. */
  exp: number;
  /** Issue time, epoch seconds (every credential this signer makes has one). */
  iat: number | null;
  /** Capabilities the credential carries (a token minted by `/api/tokens`); null: the default rules. */
  caps: Caps | null;
}

/** The `iss` of every JWT this server signs. */
export const ISSUER = "switchboard";
const CLOCK_TOLERANCE_S = 5;

export function newSessionId(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString("base64url");
}

export class SessionSigner {
  constructor(
    private readonly secret: Uint8Array,
    /** The clock, epoch milliseconds (tests move it). */
    private readonly now: () => number = Date.now,
  ) {
    if (secret.byteLength < 32) throw new Error("the session secret must be at least 32 bytes");
  }

  /** `caps` (SPEC §5) travel in the token as they are (minted by `/api/tokens`); absent: the default rules. */
  async sign(kind: CredentialKind, user: User, sid: string, ttlS: number, caps?: Caps): Promise<string> {
    return new SignJWT(caps === undefined ? { name: user.name, sid } : { name: user.name, sid, caps })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(user.id)
      .setIssuer(ISSUER)
      .setAudience(kind)
      .setIssuedAt(Math.floor(this.now() / 1000))
      .setExpirationTime(Math.floor(this.now() / 1000) + ttlS)
      .sign(this.secret);
  }

  /**
   * Credentials already verified, by their exact text, until they expire: a reconnecting SPA
   * presents the same cookie again and again, and an HMAC check costs ~50 µs of a handshake.
   * Bounded; the oldest entry goes first. Revocation is checked by the caller (auth/revocation-view.ts).
   */
  private readonly verified = new Map<string, Claims & { kind: CredentialKind }>();
  private static readonly CACHE_SIZE = 10_000;

  /** The claims of a valid, unexpired credential of this kind; null for anything else. */
  async verify(kind: CredentialKind, jwt: string): Promise<Claims | null> {
    const known = this.verifiedNow(kind, jwt);
    if (known !== undefined) return known;
    const claims = await this.check(kind, jwt);
    if (claims !== null) {
      if (this.verified.size >= SessionSigner.CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(jwt, { ...claims, kind });
    }
    return claims;
  }

  /**
   * `verify` without a promise when the credential was verified before and has not expired: its
   * claims (the caller's to keep); undefined when only `verify` can tell.
   */
  verifiedNow(kind: CredentialKind, jwt: string): Claims | undefined {
    const cached = this.verified.get(jwt);
    if (cached === undefined || cached.kind !== kind) return undefined;
    if (cached.exp + CLOCK_TOLERANCE_S > this.now() / 1000) return { user: cached.user, sid: cached.sid, exp: cached.exp, iat: cached.iat, caps: cached.caps };
    this.verified.delete(jwt);
    return undefined;
  }

  private async check(kind: CredentialKind, jwt: string): Promise<Claims | null> {
    try {
      const { payload } = await jwtVerify(jwt, this.secret, {
        algorithms: ["HS256"],
        issuer: ISSUER,
        audience: kind,
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(this.now()),
        requiredClaims: ["sub", "exp", "sid"],
      });
      const { sub, name, sid, exp, iat, caps } = payload as { sub?: unknown; name?: unknown; sid?: unknown; exp?: unknown; iat?: unknown; caps?: unknown };
      if (typeof sub !== "string" || typeof sid !== "string" || typeof exp !== "number") return null;
      // We signed it: caps that do not parse can only come from a bug; refuse rather than widen.
      const parsedCaps = caps === undefined ? null : Caps.safeParse(caps);
      if (parsedCaps !== null && !parsedCaps.success) return null;
      return { user: { id: sub, name: typeof name === "string" ? name : sub }, sid, exp, iat: typeof iat === "number" ? iat : null, caps: parsedCaps?.data ?? null };
    } catch {
      // Malformed, forged, expired, wrong audience: all the same to the caller.
      return null;
    }
  }
}
