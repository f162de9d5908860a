/** Liveness, readiness and metrics (SPEC §2). */
import { Hono } from "hono";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { bearerOf, sameSecret } from "../auth/bearer.ts";
import { errorBody } from "./errors.ts";
import type { Deps, Env } from "./context.ts";

export function healthRoutes(deps: Deps): Hono<Env> {
  const { gateway, services, metrics, config } = deps;
  const app = new Hono<Env>();
  app.get("/healthz", (c) => c.json({ status: "ok", instance: config.instanceId, region: config.region }));
  app.get("/readyz", (c) => {
    if (gateway.draining) return c.json(errorBody(ErrorCode.unavailable, "draining"), 503);
    if (!services.broker.healthy) return c.json(errorBody(ErrorCode.unavailable, "broker unreachable"), 503);
    return c.json({ status: "ready" });
  });
  app.get("/metrics", async (c) => {
    // Compared in constant time, as the API key is.
    const token = config.metricsToken;
    if (token !== undefined && !sameSecret(bearerOf(c.req.header("authorization")), token)) {
      throw new SwitchboardError(ErrorCode.unauthorized, "metrics token required");
    }
    return c.body(await metrics.render(), 200, { "Content-Type": metrics.contentType });
  });
  return app;
}
