/**
 * `signToken`: a first-message (or AUTH_COOKIE) token for apps that run Switchboard with
 * AUTH_JWT_SECRET (SPEC §4): HS256, `sub` = the user id, `name`, `caps` (SPEC §5), `iat`, `exp`.
 * The claim names are the server's defaults (AUTH_USER_CLAIM `sub`, AUTH_NAME_CLAIM `name`,
 * AUTH_CAPS_CLAIM `caps`); pass `issuer` / `audience` when the server sets AUTH_ISSUER /
 * AUTH_AUDIENCE.
 */
import { SignJWT } from "jose";
import type { Caps } from "../auth/caps.ts";

export interface SignTokenInput {
  user: { id: string; name?: string };
  caps?: Caps;
  /** Lifetime in seconds (the server refuses a token without `exp`). */
  ttlS: number;
  issuer?: string;
  audience?: string;
}

export async function signToken(input: SignTokenInput, secret: string | Uint8Array): Promise<string> {
  const key = typeof secret === "string" ? new TextEncoder().encode(secret) : secret;
  if (key.byteLength < 32) throw new TypeError("signToken: the secret must be at least 32 bytes (the server's AUTH_JWT_SECRET)");
  if (typeof input?.user?.id !== "string" || input.user.id.length === 0) throw new TypeError("signToken: user.id is required");
  if (!Number.isInteger(input.ttlS) || input.ttlS <= 0) throw new TypeError("signToken: ttlS must be a positive whole number of seconds");
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { name: input.user.name ?? input.user.id };
  if (input.caps !== undefined) claims.caps = input.caps;
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(input.user.id)
    .setIssuedAt(now)
    .setExpirationTime(now + input.ttlS);
  if (input.issuer !== undefined) jwt.setIssuer(input.issuer);
  if (input.audience !== undefined) jwt.setAudience(input.audience);
  return jwt.sign(key);
}
