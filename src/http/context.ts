/**
 * What every route gets: the Hono environment (Bun's server per request) and the app's
 * dependencies, plus the request facts that depend on TRUST_PROXY.
 */
import type { Context } from "hono";
import type { Config } from "../config.ts";
import type { Gateway } from "../gateway/gateway.ts";
import type { SwitchboardServer } from "../gateway/socket.ts";
import type { Credentials, Presented } from "../auth/credentials.ts";
import { isSecure } from "../auth/origin.ts";
import type { Services } from "../services.ts";
import type { SessionSigner } from "../auth/sessions.ts";
import type { UserDirectory } from "../auth/users.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";

export interface Deps {
  config: Config;
  gateway: Gateway;
  services: Services;
  /** Who a request is (auth/credentials.ts): every route and the upgrade ask it. */
  credentials: Credentials;
  /** Signs the sessions and tokens that login hands out. */
  signer: SessionSigner;
  users: UserDirectory;
  log: Logger;
  metrics: Metrics;
}

export type Env = { Bindings: { server: SwitchboardServer } };
export type Ctx = Context<Env>;

/**
 * The request's Cookie header as a credential, and whether it came over https (then only the
 * `__Host-` session cookie counts, SPEC §8). With COOKIE_DOMAIN the session cookie is a Domain
 * cookie without the prefix, so the plain name is read over https too.
 */
export function cookiesOf(c: Ctx, config: Config): Pick<Presented, "cookie" | "secure" | "ip"> {
  return requestCookies(c.req.raw, config, clientIp(c, config));
}

/** `cookiesOf` for a request outside Hono (the upgrade, http/ws.ts), its address already known. */
export function requestCookies(req: Request, config: Config, ip: string): Pick<Presented, "cookie" | "secure" | "ip"> {
  return { cookie: req.headers.get("cookie") ?? undefined, secure: config.cookieDomain === undefined && isSecure(req, config), ip };
}

/**
 * The client's address (SPEC §8 TRUST_PROXY): `fly` reads Fly-Client-IP, `true` the last
 * X-Forwarded-For hop, and neither reads the other's header — a header the setting does not name
 * is whatever the client sent. The last hop is the one the proxy appended; earlier ones are the
 * client's, so taking the first let a client pick a fresh address per request past the limits.
 */
export function clientIp(c: Ctx, config: Config): string {
  return requestIp(c.req.raw, c.env?.server, config);
}

/** `clientIp` for a request outside Hono. Asks Bun for the peer's address only when no trusted header says it. */
export function requestIp(req: Request, server: SwitchboardServer | undefined, config: Config): string {
  const header = config.trustProxy === "fly" ? req.headers.get("fly-client-ip")?.trim() : config.trustProxy ? req.headers.get("x-forwarded-for")?.split(",").at(-1)?.trim() : undefined;
  if (header) return header;
  return server?.requestIP(req)?.address ?? "unknown";
}
