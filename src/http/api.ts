/**
 * The server-to-server API (SPEC §2): publish as "server", and read presence. Disabled (404)
 * without API_KEY. Presence also answers a signed-in user allowed to subscribe to the topic.
 */
import { Hono } from "hono";
import { z } from "zod";
import { bearerOf, sameSecret } from "../auth/bearer.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { IdempotencyKey } from "../protocol/frames.ts";
import { authorize, type Actor } from "../protocol/topics.ts";
import { jsonBody, notFound } from "./errors.ts";
import type { Ctx, Deps, Env } from "./context.ts";

const PublishBody = z.object({
  topic: z.string().max(1024),
  data: z.unknown(),
  key: IdempotencyKey.optional(),
});

export function apiRoutes(deps: Deps): Hono<Env> {
  const { config, gateway, services, credentials } = deps;
  const app = new Hono<Env>();
  const apiKey = config.apiKey;

  function hasApiKey(c: Ctx): boolean {
    return apiKey !== undefined && sameSecret(bearerOf(c.req.header("authorization")), apiKey);
  }

  app.post("/publish", async (c) => {
    if (apiKey === undefined) return notFound(c);
    if (!hasApiKey(c)) throw new SwitchboardError(ErrorCode.unauthorized, "missing or wrong API key");
    const body = await jsonBody(c, PublishBody);
    authorize({ kind: "server" }, "publish", body.topic);
    const result = await gateway.publish(body.topic, { from: "server", data: body.data, ts: Date.now(), key: body.key });
    return c.json({ topic: body.topic, seq: result.seq, epoch: result.epoch }, 202);
  });

  app.get("/presence/:topic", async (c) => {
    const topic = c.req.param("topic");
    let actor: Actor;
    if (hasApiKey(c)) {
      actor = { kind: "server" };
    } else {
      const outcome = await credentials.identify({ cookie: c.req.header("cookie") });
      if (outcome?.ok !== true) {
        if (apiKey === undefined && outcome === null) return notFound(c);
        throw new SwitchboardError(ErrorCode.unauthorized, "API key or session required");
      }
      actor = { kind: "user", userId: outcome.identity.user.id };
    }
    authorize(actor, "subscribe", topic);
    const members = await services.presence.members(topic);
    return c.json({ topic, members });
  });

  return app;
}
