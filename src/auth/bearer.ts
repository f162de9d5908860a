/**
 * `Authorization: Bearer` parsing and the timing-safe secret compare, written once for the API
 * key (/api), METRICS_TOKEN (/metrics) and the bearer token of /auth/ticket.
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** The credential of an `Authorization: Bearer <x>` header; the scheme is case-insensitive (RFC 9110 §11.1). */
export function bearerOf(header: string | null | undefined): string | undefined {
  return header?.match(/^Bearer\s+(.+)$/i)?.[1];
}

/**
 * True when `given` equals the configured secret, compared in constant time. Both sides are
 * hashed first, so neither the content nor the length of the secret leaks through timing.
 */
export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}
