/**
 * `GET /ws`: the checks before the 101 (SPEC §3), in the SPEC's order except that the
 * process-wide and per-IP caps come first (docs/protocol.md says why). auth/ decides who the
 * request is (ticket, then session cookie; neither: first-message token), the gateway takes
 * the socket. A refused upgrade is an HTTP error and no socket is opened. Hono's cors()/csrf()
 * do not protect a GET upgrade, hence the Origin check here; hono/bun's upgradeWebSocket is not
 * used because it owns `ws.data` and hides the send status and drain.
 */
import { isAllowedOrigin } from "../auth/origin.ts";
import type { Identity } from "../auth/credentials.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { acceptUpgrade, checkCapacity, refuseUpgrade, shedUpgrade } from "../gateway/upgrade.ts";
import { errorResponse } from "./errors.ts";
import { cookiesOf, clientIp, type Ctx, type Deps } from "./context.ts";

export function wsRoute(deps: Deps) {
  const { gateway, credentials, config } = deps;

  /** Who the upgrade is for; null: nobody yet (the first frame must be a token). */
  async function identify(c: Ctx): Promise<Identity | null> {
    const outcome = await credentials.identify({ ticket: c.req.query("ticket"), ...cookiesOf(c, config) });
    if (outcome === null || outcome.ok) return outcome?.identity ?? null;
    credentials.refused(outcome.reason);
    return refuseUpgrade(gateway, outcome.reason, ErrorCode.unauthorized, outcome.message);
  }

  return async (c: Ctx): Promise<Response> => {
    try {
      if (gateway.draining) refuseUpgrade(gateway, "draining", ErrorCode.unavailable, "server is restarting; connect to another machine");
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
        return c.json({ error: { code: ErrorCode.badRequest, message: "expected a WebSocket upgrade" } }, 426);
      }
      const origin = c.req.header("origin");
      if (origin !== undefined && !isAllowedOrigin(origin, c.req.raw, config)) {
        credentials.refused("origin");
        refuseUpgrade(gateway, "origin", ErrorCode.forbidden, "origin not allowed");
      }
      const ip = clientIp(c, config);
      checkCapacity(gateway, ip, null);
      if (shedUpgrade(gateway, c.env.server, c.req.raw, ip)) return new Response(null);
      const identity = await identify(c);
      checkCapacity(gateway, ip, identity?.user ?? null);
      if (!acceptUpgrade(gateway, c.env.server, c.req.raw, ip, identity)) {
        return c.json({ error: { code: ErrorCode.badRequest, message: "WebSocket upgrade failed" } }, 400);
      }
      return new Response(null);
    } catch (error) {
      if (error instanceof SwitchboardError) return errorResponse(c, error);
      throw error;
    }
  };
}
