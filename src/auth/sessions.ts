/**
 * Sessions and tokens are HS256 JWTs signed with SESSION_SECRET (jose). Each carries a session
 * id `sid` that logout revokes. The audience tells a cookie session from a first-message token
 * so one cannot stand in for the other.
 */
import { SignJWT, jwtVerify, errors } from "jose";
import type { User } from "../protocol/frames.ts";

export type CredentialKind = "session" | "token";

export interface Claims {
  user: User;
  sid: string;
  /** Expiry, epoch seconds. */
  exp: number;
}

const ISSUER = "switchboard";
const CLOCK_TOLERANCE_S = 5;

export function newSessionId(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString("base64url");
}

export class SessionSigner {
  constructor(private readonly secret: Uint8Array) {
    if (secret.byteLength < 32) throw new Error("the session secret must be at least 32 bytes");
  }

  async sign(kind: CredentialKind, user: User, sid: string, ttlS: number): Promise<string> {
    return new SignJWT({ name: user.name, sid })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(user.id)
      .setIssuer(ISSUER)
      .setAudience(kind)
      .setIssuedAt()
      .setExpirationTime(`${ttlS}s`)
      .sign(this.secret);
  }

  /** The claims of a valid, unexpired credential of this kind; null for anything else. */
  async verify(kind: CredentialKind, jwt: string): Promise<Claims | null> {
    try {
      const { payload } = await jwtVerify(jwt, this.secret, {
        algorithms: ["HS256"],
        issuer: ISSUER,
        audience: kind,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ["sub", "exp", "sid"],
      });
      const { sub, name, sid, exp } = payload as { sub?: unknown; name?: unknown; sid?: unknown; exp?: unknown };
      if (typeof sub !== "string" || typeof sid !== "string" || typeof exp !== "number") return null;
      return { user: { id: sub, name: typeof name === "string" ? name : sub }, sid, exp };
    } catch (error) {
      if (error instanceof errors.JOSEError || error instanceof TypeError) return null;
      return null;
    }
  }
}
