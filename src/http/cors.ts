/**
 * CORS with credentials on `/auth/*` for cross-origin SPAs (SPEC §4): an `Origin` that is an exact
 * ALLOWED_ORIGINS entry gets `Access-Control-Allow-Origin: <it>` and
 * `Access-Control-Allow-Credentials: true`, preflight included; any other origin gets no
 * `Access-Control-Allow-Origin` (a preflight from it is refused with 403), so its page cannot read
 * an answer. The server's own origin needs no CORS. Hono's cors() is not used: it cannot answer a
 * refused preflight with the SPEC's error body, and the list is exact strings, never patterns.
 */
import type { MiddlewareHandler } from "hono";
import { ErrorCode } from "../protocol/codes.ts";
import { errorBody } from "./errors.ts";
import type { Env } from "./context.ts";

const METHODS = "GET, POST, OPTIONS";
const HEADERS = "Content-Type, Authorization";
const MAX_AGE_S = "600";

export function authCors(allowedOrigins: ReadonlySet<string>): MiddlewareHandler<Env> {
  return async (c, next) => {
    const origin = c.req.header("origin");
    const allowed = origin !== undefined && allowedOrigins.has(origin);
    const preflight = c.req.method === "OPTIONS" && c.req.header("access-control-request-method") !== undefined;
    if (preflight) {
      c.header("Vary", "Origin");
      if (!allowed) return c.json(errorBody(ErrorCode.forbidden, "origin not allowed"), 403);
      return c.body(null, 204, {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": METHODS,
        "Access-Control-Allow-Headers": HEADERS,
        "Access-Control-Max-Age": MAX_AGE_S,
      });
    }
    await next();
    c.header("Vary", "Origin", { append: true });
    if (allowed) {
      c.header("Access-Control-Allow-Origin", origin);
      c.header("Access-Control-Allow-Credentials", "true");
    }
  };
}
