/**
 * The server-to-server API (SPEC §2): publish as "server", and read presence. Disabled (404)
 * without API_KEY. Presence also answers a signed-in user allowed to subscribe to the topic.
 */
import { Hono } from "hono";
import { z } from "zod";
import { timingSafeEqual } from "node:crypto";
import { readSessionCookie } from "../auth/cookie.ts";
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
  const { config, gateway, services } = deps;
  const app = new Hono<Env>();
  const expected = config.apiKey === undefined ? null : Buffer.from(config.apiKey);

  function hasApiKey(c: Ctx): boolean {
    const given = c.req.header("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
    if (expected === null || given === undefined) return false;
    const buf = Buffer.from(given);
    return buf.length === expected.length && timingSafeEqual(buf, expected);
  }

  app.post("/publish", async (c) => {
    if (expected === null) return notFound(c);
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
      const jwt = readSessionCookie(c.req.header("cookie"));
      const claims = jwt === null ? null : await gateway.verify("session", jwt);
      if (claims === null) {
        if (expected === null && jwt === null) return notFound(c);
        throw new SwitchboardError(ErrorCode.unauthorized, "API key or session required");
      }
      actor = { kind: "user", userId: claims.user.id };
    }
    authorize(actor, "subscribe", topic);
    const members = await services.presence.members(topic);
    return c.json({ topic, members });
  });

  return app;
}
