/**
 * What every route gets: the Hono environment (Bun's server per request) and the app's
 * dependencies, plus the request facts that depend on TRUST_PROXY.
 */
import type { Context } from "hono";
import type { Config } from "../config.ts";
import type { Gateway, SwitchboardServer } from "../gateway/gateway.ts";
import type { Services } from "../services.ts";
import type { SessionSigner } from "../auth/sessions.ts";
import type { UserDirectory } from "../auth/users.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";

export interface Deps {
  config: Config;
  gateway: Gateway;
  services: Services;
  signer: SessionSigner;
  users: UserDirectory;
  log: Logger;
  metrics: Metrics;
}

export type Env = { Bindings: { server: SwitchboardServer } };
export type Ctx = Context<Env>;

/** The client's address: Fly-Client-IP (or the first X-Forwarded-For) behind a trusted proxy. */
export function clientIp(c: Ctx, config: Config): string {
  if (config.trustProxy) {
    const fly = c.req.header("fly-client-ip")?.trim();
    if (fly) return fly;
    const forwarded = c.req.header("x-forwarded-for")?.split(",")[0]?.trim();
    if (forwarded) return forwarded;
  }
  return c.env?.server?.requestIP(c.req.raw)?.address ?? "unknown";
}
