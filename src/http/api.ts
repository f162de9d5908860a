/**
 * The server-to-server API (SPEC §2): publish as "server", and read presence. Disabled (404)
 * without API_KEY. Presence also answers a signed-in user allowed to read the topic's presence.
 * Every check is the gateway's one decision point (auth/permissions.ts); with the API key the
 * caller acts as the server (SPEC §5).
 */
import { Hono } from "hono";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { PublishBody } from "../protocol/api.ts";
import type { Actor } from "../auth/permissions.ts";
import { jsonBody, notFound } from "./errors.ts";
import type { ApiKey } from "./api-key.ts";
import { cookiesOf, type Deps, type Env } from "./context.ts";
import { KeyedBuckets } from "../budgets/buckets.ts";
import { budgetKeyOf } from "../auth/credentials.ts";
import { MEMBERS_PER_TOKEN, sizeCost } from "../budgets/cost.ts";

export function apiRoutes(deps: Deps, key: ApiKey): Hono<Env> {
  const { gateway, services, credentials } = deps;
  const app = new Hono<Env>();
  /** A signed-in user's presence reads, per session: the socket rate limit (RATE_LIMIT_PER_S / _BURST). */
  const buckets = new KeyedBuckets(deps.config.rateLimitPerS, deps.config.rateLimitBurst);
  setInterval(() => buckets.sweep(Date.now()), 60_000).unref();

  app.post("/publish", key.required, async (c) => {
    const body = await jsonBody(c, PublishBody);
    gateway.permissions.asServer("publish", body.topic);
    const result = await gateway.publish(body.topic, { from: "server", data: body.data, ts: Date.now(), key: body.key });
    // An ephemeral topic has no position: 202 {topic} (extension).
    return c.json(result === null ? { topic: body.topic } : { topic: body.topic, seq: result.seq, epoch: result.epoch }, 202);
  });

  app.get("/presence/:topic", async (c) => {
    const topic = c.req.param("topic");
    let actor: Actor;
    let rateKey: string | null = null;
    if (key.matches(c)) {
      actor = { kind: "server" };
    } else {
      const outcome = await credentials.identify({ ...cookiesOf(c, deps.config) });
      if (outcome?.ok !== true) {
        if (!key.enabled && outcome === null) return notFound(c);
        throw new SwitchboardError(ErrorCode.unauthorized, "API key or session required");
      }
      actor = { kind: "user", user: outcome.identity.user, caps: outcome.identity.caps };
      rateKey = budgetKeyOf(outcome.identity);
      if (!buckets.take(rateKey, Date.now())) throw new SwitchboardError(ErrorCode.rateLimited, "too many requests; slow down", 1);
    }
    await gateway.permissions.authorize(actor, "presence", topic);
    const members = await services.presence.members(topic);
    // A user's answer costs by its size, as a `presence` frame does (SPEC §8); the API key's does not.
    if (rateKey !== null) buckets.charge(rateKey, sizeCost(members.length, MEMBERS_PER_TOKEN) - 1, Date.now());
    return c.json({ topic, members });
  });

  return app;
}
