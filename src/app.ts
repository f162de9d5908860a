/**
 * The Hono app: the only place routes are listed. Bun's server reaches handlers as `c.env.server`
 * (`createFetch` below, server.ts's `fetch`, calls `app.fetch(req, { server })`; a GET of /ws goes
 * to http/ws.ts directly).
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
import { pathOf, wsRoute } from "./http/ws.ts";
import { setSecurityHeaders } from "./http/security-headers.ts";
import type { Deps, Env } from "./http/context.ts";
import type { SwitchboardServer } from "./gateway/socket.ts";

export function createApp(deps: Deps): Hono<Env> {
  const app = new Hono<Env>();

  // Security headers on every HTTP response. CORS only on /auth/* (http/cors.ts).
  app.use("*", async (c, next) => {
    await next();
    setSecurityHeaders(c.header, c.req.raw, c.req.path, deps.config);
  });

  // No body needs to be larger than the largest frame (a publish body is a publish frame). Without
  // a limit, six unauthenticated 50 MB login bodies took 400 MB of RSS (read whole to parse).
  const maxSize = Math.max(1 << 20, deps.config.maxPayloadBytes + 4096);
  app.use("*", bodyLimit({ maxSize, onError: (c) => c.json(errorBody(ErrorCode.tooLarge, `request body over ${maxSize} bytes`), 413) }));

  app.use("/auth/*", authCors(deps.config.allowedOrigins));
  // GET /ws comes here only when createFetch did not take it (HEAD, or a path Hono decodes to /ws).
  const ws = wsRoute(deps);
  app.get("/ws", async (c) => (await ws(c.req.raw, c.env.server)) ?? new Response(null));
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

/**
 * Bun.serve's `fetch`: the app, except that `GET /ws` goes straight to the upgrade (http/ws.ts
 * says why), which answers its refusals as the app would.
 */
export function createFetch(deps: Deps): (req: Request, server: SwitchboardServer) => Promise<Response | undefined> | Response | undefined {
  const app = createApp(deps);
  const ws = wsRoute(deps);
  return (req, server) => (req.method === "GET" && pathOf(req.url) === "/ws" ? ws(req, server) : app.fetch(req, { server }));
}
