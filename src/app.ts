/**
 * The Hono app: the only place routes are listed. Bun's server reaches handlers as `c.env.server`
 * (see server.ts, which calls `app.fetch(req, { server })`).
 */
import { Hono } from "hono";
import { authRoutes } from "./http/auth.ts";
import { apiRoutes } from "./http/api.ts";
import { healthRoutes } from "./http/health.ts";
import { demoRoutes } from "./http/demo.ts";
import { clientBundleRoutes } from "./http/client-bundle.ts";
import { notFound, onError } from "./http/errors.ts";
import { handleUpgrade } from "./gateway/upgrade.ts";
import type { Deps, Env } from "./http/context.ts";

export function createApp(deps: Deps): Hono<Env> {
  const app = new Hono<Env>();

  // Security headers on every HTTP response. No CORS: no route answers cross-origin reads.
  app.use("*", async (c, next) => {
    await next();
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    c.header("X-Frame-Options", "DENY");
  });

  app.get("/ws", (c) => handleUpgrade(c, deps.gateway));
  app.route("/auth", authRoutes(deps));
  app.route("/api", apiRoutes(deps));
  app.route("/", healthRoutes(deps));
  app.route("/", demoRoutes(deps));
  app.route("/", clientBundleRoutes());

  app.onError(onError(deps.log));
  app.notFound(notFound);
  return app;
}
