/**
 * The checks before the 101 (SPEC §3), in the SPEC's order except that the process-wide and per-IP
 * caps come first (docs/protocol.md says why). A refused upgrade is an HTTP error
 * and no socket is opened. Hono's cors()/csrf() do not protect a GET upgrade, hence the Origin
 * check here; hono/bun's upgradeWebSocket is not used because it owns `ws.data` and hides the
 * send status and drain.
 */
import { readSessionCookie } from "../auth/cookie.ts";
import { isAllowedOrigin } from "../auth/origin.ts";
import type { User } from "../protocol/frames.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { errorResponse } from "../http/errors.ts";
import { clientIp, type Ctx } from "../http/context.ts";
import { Connection, type AuthMode } from "./connection.ts";
import type { Gateway } from "./gateway.ts";

interface Identity {
  mode: AuthMode;
  user: User | null;
  sid: string | null;
  expiresAt: number | null;
}

function refuse(gw: Gateway, reason: string, code: ErrorCode, message: string): never {
  gw.metrics.upgradesRejected.inc({ reason });
  throw new SwitchboardError(code, message);
}

/** Who the upgrade is for: a ticket, a session cookie, or nobody yet (first-message token). */
async function identify(c: Ctx, gw: Gateway): Promise<Identity> {
  const ticket = c.req.query("ticket");
  if (ticket !== undefined) {
    const grant = ticket.length > 0 && ticket.length <= 256 ? await gw.services.stores.tickets.redeem(ticket) : null;
    if (grant === null || (await gw.isRevoked(grant.sid))) {
      gw.noteAuthFailure("bad_ticket");
      refuse(gw, "bad_ticket", ErrorCode.unauthorized, "unknown, expired or used ticket");
    }
    return { mode: "ticket", user: grant.user, sid: grant.sid, expiresAt: null };
  }
  const jwt = readSessionCookie(c.req.header("cookie"));
  if (jwt !== null) {
    const claims = await gw.verify("session", jwt);
    if (claims === null) {
      gw.noteAuthFailure("bad_cookie");
      refuse(gw, "bad_cookie", ErrorCode.unauthorized, "invalid or revoked session");
    }
    return { mode: "cookie", user: claims.user, sid: claims.sid, expiresAt: claims.exp };
  }
  return { mode: "token", user: null, sid: null, expiresAt: null };
}

/** Connection caps; checked before and again right before the upgrade (after the awaits). */
function checkCaps(gw: Gateway, ip: string, user: User | null): void {
  const { config, registry } = gw;
  if (registry.size >= config.maxConnections) refuse(gw, "max_connections", ErrorCode.overloaded, "server is at its connection limit");
  if (registry.ipCount(ip) >= config.maxConnectionsPerIp) refuse(gw, "max_per_ip", ErrorCode.rateLimited, "too many connections from this address");
  if (user !== null && registry.userCount(user.id) >= config.maxConnectionsPerUser) {
    refuse(gw, "max_per_user", ErrorCode.rateLimited, "too many connections for this user");
  }
}

export async function handleUpgrade(c: Ctx, gw: Gateway): Promise<Response> {
  try {
    if (gw.draining) refuse(gw, "draining", ErrorCode.unavailable, "server is restarting; connect to another machine");
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.json({ error: { code: ErrorCode.badRequest, message: "expected a WebSocket upgrade" } }, 426);
    }
    const origin = c.req.header("origin");
    if (origin !== undefined && !isAllowedOrigin(origin, c.req.raw, gw.config)) {
      gw.noteAuthFailure("origin");
      refuse(gw, "origin", ErrorCode.forbidden, "origin not allowed");
    }
    const ip = clientIp(c, gw.config);
    checkCaps(gw, ip, null);
    const identity = await identify(c, gw);
    checkCaps(gw, ip, identity.user);
    if (gw.draining) refuse(gw, "draining", ErrorCode.unavailable, "server is restarting; connect to another machine");

    const conn = new Connection(gw, {
      id: crypto.randomUUID(),
      ip,
      authMode: identity.mode,
      user: identity.user,
      sid: identity.sid,
      expiresAt: identity.expiresAt,
    });
    if (!c.env.server.upgrade(c.req.raw, { data: { conn } })) {
      return c.json({ error: { code: ErrorCode.badRequest, message: "WebSocket upgrade failed" } }, 400);
    }
    gw.registry.add(conn);
    return new Response(null);
  } catch (error) {
    if (error instanceof SwitchboardError) return errorResponse(c, error);
    throw error;
  }
}
