/**
 * Liveness, readiness and metrics (SPEC §2). With METRICS_PORT (SPEC §8) `/metrics` is served
 * only by `metricsApp` on that port, and the public app answers 404 there.
 */
import { Hono, type Context } from "hono";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { bearerOf, sameSecret } from "../auth/bearer.ts";
import { errorBody, notFound, onError } from "./errors.ts";
import type { Deps, Env } from "./context.ts";

export function healthRoutes(deps: Deps): Hono<Env> {
  const { gateway, services, config } = deps;
  const app = new Hono<Env>();
  app.get("/healthz", (c) => c.json({ status: "ok", instance: config.instanceId, region: config.region }));
  app.get("/readyz", (c) => {
    if (gateway.draining) return c.json(errorBody(ErrorCode.unavailable, "draining"), 503);
    if (!services.broker.healthy) return c.json(errorBody(ErrorCode.unavailable, "broker unreachable"), 503);
    if (!services.connected()) return c.json(errorBody(ErrorCode.unavailable, "a Redis connection is down"), 503);
    // Until the registry lists it, other machines' server API calls would not wait for this one.
    if (!gateway.listed) return c.json(errorBody(ErrorCode.unavailable, "not yet listed in the deployment"), 503);
    return c.json({ status: "ready" });
  });
  if (config.metricsPort === undefined) app.get("/metrics", metricsHandler(deps));
  return app;
}

function metricsHandler({ config, metrics }: Pick<Deps, "config" | "metrics">) {
  return async (c: Context<Env>) => {
    // Compared in constant time, as the API key is.
    const token = config.metricsToken;
    if (token !== undefined && !sameSecret(bearerOf(c.req.header("authorization")), token)) {
      throw new SwitchboardError(ErrorCode.unauthorized, "metrics token required");
    }
    return c.body(await metrics.render(), 200, { "Content-Type": metrics.contentType });
  };
}

/** The app of the METRICS_PORT listener: `/metrics` and nothing else. */
export function metricsApp(deps: Pick<Deps, "config" | "metrics" | "log">): Hono<Env> {
  const app = new Hono<Env>();
  app.get("/metrics", metricsHandler(deps));
  app.onError(onError(deps.log));
  app.notFound(notFound);
  return app;
}
