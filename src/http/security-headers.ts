/**
 * The headers every HTTP response carries (the Hono middleware in app.ts, and the upgrade's
 * refusals, which http/ws.ts answers outside Hono).
 */
import { isSecure, type OriginPolicy } from "../auth/origin.ts";

export function setSecurityHeaders(set: (name: string, value: string) => void, req: Request, path: string, policy: OriginPolicy): void {
  set("X-Content-Type-Options", "nosniff");
  set("Referrer-Policy", "no-referrer");
  set("X-Frame-Options", "DENY");
  // Every /auth and /api response (and the demo's POSTs, which hand out tickets and tokens) — refusals by the body limit included — is never cached:
  // both carry credentials (sessions, tickets, tokens) or live state.
  if (path.startsWith("/auth/") || path.startsWith("/api/") || (req.method === "POST" && path.startsWith("/demo/"))) set("Cache-Control", "no-store");
  // Served over https: browsers must never come back over http (SPEC §8), where a network
  // attacker could read or plant cookies. One year; includeSubDomains is the operator's call.
  if (isSecure(req, policy)) set("Strict-Transport-Security", "max-age=31536000");
}
