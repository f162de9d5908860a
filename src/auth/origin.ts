/**
 * Cross-site WebSocket hijacking defence (SPEC §3): a browser always sends `Origin`, so an
 * upgrade or ticket request from a page of another origin — another site, or another port of
 * this host — is refused even though it carries the victim's cookie. Origins are compared as
 * whole strings, never by prefix or suffix; `null` is never allowed.
 */

export interface OriginPolicy {
  allowedOrigins: ReadonlySet<string>;
  /** TRUST_PROXY: `true` and `fly` take the scheme from X-Forwarded-Proto. */
  trustProxy: false | true | "fly";
}

/** The scheme a trusted proxy reports, or null (no proxy trusted, or no usable header). */
function forwardedProto(req: Request, policy: OriginPolicy): "http" | "https" | null {
  if (policy.trustProxy === false) return null;
  const forwarded = req.headers.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  return forwarded === "http" || forwarded === "https" ? forwarded : null;
}

const DEFAULT_PORT: Record<string, string> = { http: ":80", https: ":443" };

/**
 * This server's own origin as the client addressed it: scheme + Host header, serialized as a
 * browser serializes `Origin` (RFC 6454): without the scheme's default port, which a proxy may
 * spell out in `Host` (`app.example.com:443`) while the browser's `Origin` never does.
 */
export function ownOrigin(req: Request, policy: OriginPolicy): string | null {
  const host = req.headers.get("host")?.toLowerCase();
  if (host === undefined || host === "") return null;
  const scheme = forwardedProto(req, policy) ?? schemeOf(req.url);
  const defaultPort = DEFAULT_PORT[scheme];
  const hostPort = defaultPort !== undefined && host.endsWith(defaultPort) ? host.slice(0, -defaultPort.length) : host;
  return `${scheme}://${hostPort}`;
}

/** True for an allowed origin: this server's own, or an exact ALLOWED_ORIGINS entry. */
export function isAllowedOrigin(origin: string, req: Request, policy: OriginPolicy): boolean {
  if (origin === "null") return false;
  if (policy.allowedOrigins.has(origin)) return true;
  return origin === ownOrigin(req, policy);
}

/** The request was made over https (directly, or behind a trusted proxy that says so). */
export function isSecure(req: Request, policy: OriginPolicy): boolean {
  const forwarded = forwardedProto(req, policy);
  if (forwarded !== null) return forwarded === "https";
  return schemeOf(req.url) === "https";
}

/** The scheme of an absolute URL (a request's always is), without parsing the rest. */
function schemeOf(url: string): string {
  return url.slice(0, url.indexOf(":")).toLowerCase();
}
