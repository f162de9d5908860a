/**
 * The session cookie (SPEC §2): HttpOnly, SameSite=Lax, Path=/; over https also Secure with the
 * `__Host-` prefix, which binds it to this exact host. With COOKIE_DOMAIN (SPEC §4) it is
 * `Domain=<it>; Secure` under the plain name instead (`__Host-` forbids a Domain), so that
 * `app.example.com` and `rt.example.com` share it.
 */
export const COOKIE_NAME = "sb_session";
export const SECURE_COOKIE_NAME = `__Host-${COOKIE_NAME}`;

export function sessionCookie(jwt: string, maxAgeS: number, secure: boolean, domain?: string): string {
  if (domain !== undefined) return `${COOKIE_NAME}=${jwt}; Max-Age=${maxAgeS}; Domain=${domain}; Path=/; HttpOnly; SameSite=Lax; Secure`;
  const name = secure ? SECURE_COOKIE_NAME : COOKIE_NAME;
  return `${name}=${jwt}; Max-Age=${maxAgeS}; Path=/; HttpOnly; SameSite=Lax${secure ? "; Secure" : ""}`;
}

export function clearedCookie(secure: boolean, domain?: string): string {
  return sessionCookie("", 0, secure, domain);
}

/**
 * The session JWT from a Cookie header: the `__Host-` one first, then the plain one — or, with
 * `hostOnly` (a request over https), the `__Host-` one alone: any page of a sibling subdomain,
 * or of this host over http, can plant a plain cookie, but none can set a `__Host-` one.
 */
export function readSessionCookie(header: string | null | undefined, hostOnly = false): string | null {
  if (!header) return null;
  let plain: string | null = null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name === SECURE_COOKIE_NAME && value) return value;
    if (name === COOKIE_NAME && value && !hostOnly) plain = value;
  }
  return plain;
}
