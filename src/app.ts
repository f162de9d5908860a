/**
 * The Hono app: the only place routes are listed. Bun's server reaches handlers as `c.env.server`
 * (see server.ts, which calls `app.fetch(req, { server })`).
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { authRoutes } from "./http/auth.ts";
import { apiRoutes } from "./http/api.ts";
import { SERVER_API_PATHS, serverApiRoutes } from "./http/api-server.ts";
import { apiKey } from "./http/api-key.ts";
import { healthRoutes } from "./http/health.ts";
import { demoRoutes } from "./http/demo.ts";
import { demoPrivateRoutes } from "./http/demo-private.ts";
import { clientBundleRoutes } from "./http/client-bundle.ts";
import { authCors } from "./http/cors.ts";
import { errorBody, onError, routeNotFound } from "./http/errors.ts";
import { ErrorCode } from "./protocol/codes.ts";
import { wsRoute } from "./http/ws.ts";
import { isSecure } from "./auth/origin.ts";
import type { Deps, Env } from "./http/context.ts";

export function createApp(deps: Deps): Hono<Env> {
  const app = new Hono<Env>();

  // Security headers on every HTTP response. CORS only on /auth/* (http/cors.ts).
  app.use("*", async (c, next) => {
    await next();
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    c.header("X-Frame-Options", "DENY");
    // Every /auth and /api response (and the demo's POSTs, which hand out tickets and tokens) — refusals by the body limit included — is never cached:
    // both carry credentials (sessions, tickets, tokens) or live state.
    if (c.req.path.startsWith("/auth/") || c.req.path.startsWith("/api/") || (c.req.method === "POST" && c.req.path.startsWith("/demo/"))) c.header("Cache-Control", "no-store");
    // Served over https: browsers must never come back over http (SPEC §8), where a network
    // attacker could read or plant cookies. One year; includeSubDomains is the operator's call.
    if (isSecure(c.req.raw, deps.config)) c.header("Strict-Transport-Security", "max-age=31536000");
  });

  // No body needs to be larger than the largest frame (a publish body is a publish frame). Without
  // a limit, six unauthenticated 50 MB login bodies took 400 MB of RSS (read whole to parse).
  const maxSize = Math.max(1 << 20, deps.config.maxPayloadBytes + 4096);
  app.use("*", bodyLimit({ maxSize, onError: (c) => c.json(errorBody(ErrorCode.tooLarge, `request body over ${maxSize} bytes`), 413) }));

  app.use("/auth/*", authCors(deps.config.allowedOrigins));
  app.get("/ws", wsRoute(deps));
  app.route("/auth", authRoutes(deps));
  const key = apiKey(deps.config);
  app.route("/api", apiRoutes(deps, key));
  app.route("/api", serverApiRoutes(deps, key));
  app.route("/", healthRoutes(deps));
  app.route("/", demoRoutes(deps));
  // The demo chat's private rooms: only for the demo as shipped (config.ts `demo`).
  if (deps.config.demo) app.route("/", demoPrivateRoutes(deps));
  app.route("/", clientBundleRoutes());

  app.onError(onError(deps.log));
  // Without API_KEY the key-only API does not exist (SPEC §2: 404), whatever the method.
  app.notFound(routeNotFound(app.routes, key.enabled ? [] : ["/api/publish", ...SERVER_API_PATHS]));
  return app;
}
