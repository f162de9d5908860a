/**
 * Cross-site WebSocket hijacking defence (SPEC §3): a browser always sends `Origin`, so an
 * upgrade or ticket request from a page of another origin — another site, or another port of
 * this host — is refused even though it carries the victim's cookie. Origins are compared as
 * whole strings, never by prefix or suffix; `null` is never allowed.
 */

export interface OriginPolicy {
  allowedOrigins: ReadonlySet<string>;
  trustProxy: boolean;
}

/** This server's own origin as the client addressed it: scheme + Host header. */
export function ownOrigin(req: Request, policy: OriginPolicy): string | null {
  const host = req.headers.get("host");
  if (host === null || host === "") return null;
  let scheme = new URL(req.url).protocol.replace(":", "");
  if (policy.trustProxy) {
    const forwarded = req.headers.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
    if (forwarded === "http" || forwarded === "https") scheme = forwarded;
  }
  return `${scheme}://${host.toLowerCase()}`;
}

/** True for an allowed origin: this server's own, or an exact ALLOWED_ORIGINS entry. */
export function isAllowedOrigin(origin: string, req: Request, policy: OriginPolicy): boolean {
  if (origin === "null") return false;
  if (policy.allowedOrigins.has(origin)) return true;
  return origin === ownOrigin(req, policy);
}

/** The request was made over https (directly, or behind a trusted proxy that says so). */
export function isSecure(req: Request, policy: OriginPolicy): boolean {
  if (policy.trustProxy) {
    const forwarded = req.headers.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
    if (forwarded !== undefined) return forwarded === "https";
  }
  return new URL(req.url).protocol === "https:";
}
