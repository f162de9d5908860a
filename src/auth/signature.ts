/**
 * Stripe-style request signatures (SPEC §6): `Switchboard-Signature: t=<unix s>,v1=<hex HMAC-SHA256
 * of "<t>.<raw body>">`. Signs webhooks and the AUTH_CONNECT_URL / AUTHZ_URL calls; the server SDK's
 * `verifyWebhook` uses `verifySignature`. node:crypto only, so it runs on Bun and on Node 20+.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "Switchboard-Signature";

function hmacHex(secret: string, t: number, rawBody: string): string {
  return createHmac("sha256", secret).update(`${t}.${rawBody}`).digest("hex");
}

/** The header value for a body sent now (each attempt is signed when it is sent). */
export function signatureHeader(secret: string, rawBody: string, nowS = Math.floor(Date.now() / 1000)): string {
  return `t=${nowS},v1=${hmacHex(secret, nowS, rawBody)}`;
}

export class SignatureError extends Error {
  override name = "SignatureError";
}

/**
 * Checks a header against the raw body: a `t` within `toleranceS` of now (either way) and a
 * matching `v1` (any of several, as during a secret rotation). Throws SignatureError saying which.
 */
export function verifySignature(rawBody: string, header: string | null | undefined, secret: string, toleranceS = 300, nowS = Math.floor(Date.now() / 1000)): void {
  if (typeof header !== "string" || header.length === 0 || header.length > 2048) throw new SignatureError("missing signature header");
  let t: number | null = null;
  const v1: string[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === "t" && /^\d{1,12}$/.test(value)) t = Number(value);
    else if (key === "v1" && /^[0-9a-f]{64}$/.test(value)) v1.push(value);
  }
  if (t === null || v1.length === 0) throw new SignatureError("malformed signature header");
  if (Math.abs(nowS - t) > toleranceS) throw new SignatureError("signature timestamp outside the tolerance");
  const expected = Buffer.from(hmacHex(secret, t, rawBody), "hex");
  if (!v1.some((sig) => timingSafeEqual(Buffer.from(sig, "hex"), expected))) throw new SignatureError("signature does not match");
}
