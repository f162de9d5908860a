/**
 * `GET /ws`: the checks before the 101 (SPEC §3), in the SPEC's order except that the
 * process-wide and per-IP caps come first (docs/protocol.md says why). auth/ decides who the
 * request is (ticket, then session cookie; neither: first-message token), the gateway takes
 * the socket. A refused upgrade is an HTTP error and no socket is opened. Hono's cors()/csrf()
 * do not protect a GET upgrade, hence the Origin check here; hono/bun's upgradeWebSocket is not
 * used because it owns `ws.data` and hides the send status and drain.
 *
 * A GET of `/ws` reaches this before Hono (app.ts `createFetch`): an upgrade needs none of the
 * app's middleware (no body, no CORS), and Hono's dispatch, its body limit and the Response the
 * middleware copy to decorate (Bun discards it after a 101) were ~15 % of a handshake's CPU
 * (bench/README.md, round four). A refusal is answered here as Hono would answer it: the same
 * JSON body, the same security headers.
 */
import { isAllowedOrigin } from "../auth/origin.ts";
import type { Identity, Outcome } from "../auth/credentials.ts";
import { ErrorCode, SwitchboardError, httpStatus } from "../protocol/codes.ts";
import { acceptUpgrade, checkCapacity, countFailedUpgrade, refuseUpgrade, shedUpgrade } from "../gateway/upgrade.ts";
import type { SwitchboardServer } from "../gateway/socket.ts";
import { errorFields } from "../log.ts";
import { errorBody } from "./errors.ts";
import { setSecurityHeaders } from "./security-headers.ts";
import { requestCookies, requestIp, type Deps } from "./context.ts";

/**
 * Upgrades the request (undefined: Bun answers with the 101) or answers why not. Without a promise
 * when the credential check needs no I/O (a cookie verified before, its "not revoked" kept).
 */
export type WsHandler = (req: Request, server: SwitchboardServer) => Promise<Response | undefined> | Response | undefined;

/** The path of a request URL as Bun gives it (`http://host/path?query`), without parsing a URL. */
export function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const query = url.indexOf("?", start);
  return query < 0 ? url.slice(start) : url.slice(start, query);
}

/** `?ticket=` (an empty one is presented, and invalid); undefined without one. */
function ticketOf(url: string): string | undefined {
  if (!url.includes("?")) return undefined;
  return new URL(url).searchParams.get("ticket") ?? undefined;
}

/** An HTTP answer instead of the 101, with the headers every response carries (app.ts). */
function answer(req: Request, config: Deps["config"], body: unknown, status: number, retryAfter?: number): Response {
  const res = Response.json(body, { status });
  if (retryAfter !== undefined) res.headers.set("Retry-After", String(retryAfter));
  setSecurityHeaders((name, value) => res.headers.set(name, value), req, "/ws", config);
  return res;
}

/** A refusal (SwitchboardError) or a failure, counted (gateway/upgrade.ts) and answered as the app answers them. */
function refused(req: Request, { config, log, gateway }: Pick<Deps, "config" | "log" | "gateway">, error: unknown): Response {
  countFailedUpgrade(gateway, error);
  if (error instanceof SwitchboardError) {
    if (error.code === ErrorCode.internal) log.error("request failed", { path: "/ws", ...errorFields(error.cause ?? error) });
    return answer(req, config, errorBody(error.code, error.message), httpStatus[error.code], error.retryAfter);
  }
  // As Hono's onError (http/errors.ts) answers anything else.
  log.error("request failed", { path: "/ws", ...errorFields(error) });
  return answer(req, config, errorBody(ErrorCode.internal, "internal error"), 500);
}

export function wsRoute(deps: Deps): WsHandler {
  const { gateway, credentials, config } = deps;

  /** Who the upgrade is for; null: nobody yet (the first frame must be a token). Throws the refusal. */
  function identityOf(outcome: Outcome | null): Identity | null {
    if (outcome === null || outcome.ok) return outcome?.identity ?? null;
    credentials.refused(outcome.reason);
    return refuseUpgrade(gateway, outcome.reason, ErrorCode.unauthorized, outcome.message);
  }

  function upgrade(req: Request, server: SwitchboardServer): Promise<Response | undefined> | Response | undefined {
    if (gateway.draining) refuseUpgrade(gateway, "draining", ErrorCode.unavailable, "server is restarting; connect to another machine");
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return answer(req, config, errorBody(ErrorCode.badRequest, "expected a WebSocket upgrade"), 426);
    }
    const origin = req.headers.get("origin");
    if (origin !== null && !isAllowedOrigin(origin, req, config)) {
      credentials.refused("origin");
      refuseUpgrade(gateway, "origin", ErrorCode.forbidden, "origin not allowed");
    }
    const ip = requestIp(req, server, config);
    checkCapacity(gateway, ip, null);
    if (shedUpgrade(gateway, server, req, ip)) return undefined;
    const presented = { ticket: ticketOf(req.url), ...requestCookies(req, config, ip) };
    // A reconnect of a session checked before needs no await: no promise, no async frame, and Bun
    // takes the 101 from a synchronous `fetch`. The same checks at the same moment as `identify`'s.
    const known = credentials.identifyNow(presented);
    if (known !== undefined) return admit(req, server, ip, known);
    return credentials.identify(presented).then((outcome) => admit(req, server, ip, outcome));
  }

  /** After the credential check: the caps again (it may have awaited), then the socket. */
  function admit(req: Request, server: SwitchboardServer, ip: string, outcome: Outcome | null): Response | undefined {
    const identity = identityOf(outcome);
    checkCapacity(gateway, ip, identity?.user ?? null);
    if (!acceptUpgrade(gateway, server, req, ip, identity)) return answer(req, config, errorBody(ErrorCode.badRequest, "WebSocket upgrade failed"), 400);
    return undefined;
  }

  return (req, server) => {
    try {
      const answered = upgrade(req, server);
      return answered instanceof Promise ? answered.catch((error: unknown) => refused(req, deps, error)) : answered;
    } catch (error) {
      return refused(req, deps, error);
    }
  };
}
