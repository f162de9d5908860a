/**
 * The server API beyond publish and presence (SPEC §6): broadcast, history, presence stats,
 * server-side subscribe / unsubscribe / disconnect, tickets and tokens for the app's own users,
 * and the deployment's topics and instances. Every route needs the API key (404 without
 * API_KEY). The API acts as the server: client namespace rules do not apply, but a topic must be
 * valid (400) and inside a namespace (403). A body that fails validation acts on nothing.
 */
import { Hono, type MiddlewareHandler } from "hono";
import type { ZodType } from "zod";
import { newSessionId } from "../auth/sessions.ts";
import {
  BroadcastBody,
  DisconnectBody,
  HistoryQuery,
  TicketBody,
  TokenBody,
  TopicsQuery,
  UserTopicBody,
  type HistoryAnswer,
} from "../protocol/api.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import type { MessageFrame } from "../protocol/frames.ts";
import { describeZod } from "../protocol/parse.ts";
import { readHistory } from "./history.ts";
import { broadcast } from "./broadcast.ts";
import { jsonBody } from "./errors.ts";
import type { ApiKey } from "./api-key.ts";
import type { Ctx, Deps, Env } from "./context.ts";

/** Every route here, for the app's 404-without-API_KEY rule. */
export const SERVER_API_PATHS = [
  "/api/broadcast",
  "/api/history/:topic",
  "/api/presence/:topic/stats",
  "/api/subscribe",
  "/api/unsubscribe",
  "/api/disconnect",
  "/api/tickets",
  "/api/tokens",
  "/api/topics",
  "/api/info",
];

function query<T>(c: Ctx, schema: ZodType<T>): T {
  const result = schema.safeParse(c.req.query());
  if (!result.success) throw new SwitchboardError(ErrorCode.badRequest, describeZod(result.error, "invalid query"));
  return result.data;
}

export function serverApiRoutes(deps: Deps, key: ApiKey): Hono<Env> {
  const app = new Hono<Env>();
  topicRoutes(app, deps, key.required);
  userRoutes(app, deps, key.required);
  return app;
}

/** Per topic and per deployment: broadcast, history, presence stats, topics, info. */
function topicRoutes(app: Hono<Env>, deps: Deps, guard: MiddlewareHandler<Env>): void {
  const { gateway, services } = deps;

  app.post("/broadcast", guard, async (c) => {
    const body = await jsonBody(c, BroadcastBody);
    const check = (topic: string) => void gateway.permissions.asServer("publish", topic);
    return c.json(await broadcast(body, (topic, input) => gateway.publish(topic, input), check), 202);
  });

  app.get("/history/:topic", guard, async (c) => {
    const topic = c.req.param("topic");
    const ns = gateway.permissions.asServer("history", topic);
    const q = query(c, HistoryQuery);
    // An ephemeral topic keeps nothing and has no position (SPEC §5; extension: this answer).
    if (ns.delivery === "ephemeral") return c.json({ topic, epoch: "", seq: 0, recovered: false, messages: [] } satisfies HistoryAnswer);
    const since = q.since === undefined ? undefined : { seq: q.since, epoch: q.epoch ?? "" };
    const page = await readHistory(services.broker, topic, since, q.limit, ns.history.size);
    const answer: HistoryAnswer = {
      topic,
      epoch: page.position.epoch,
      seq: page.position.seq,
      recovered: page.recovered,
      messages: page.frames.map((frame) => JSON.parse(frame) as MessageFrame),
    };
    return c.json(answer);
  });

  app.get("/presence/:topic/stats", guard, async (c) => {
    const topic = c.req.param("topic");
    gateway.permissions.asServer("presence", topic);
    const members = await services.presence.members(topic);
    return c.json({ topic, users: members.length, connections: members.reduce((n, m) => n + m.connections, 0) });
  });

  app.get("/topics", guard, async (c) => {
    const q = query(c, TopicsQuery);
    return c.json({ topics: await services.deployment.topics(q.prefix, q.limit) });
  });

  app.get("/info", guard, async (c) => {
    const instances = await services.deployment.instances();
    // The SPEC's fields only: the registry also carries what the processes tell each other (fenceMs).
    return c.json({ instances: instances.map(({ id, region, connections, topics, startedAt, draining }) => ({ id, region, connections, topics, startedAt, draining })) });
  });
}

/** Per user: server-side subscribe, unsubscribe, disconnect (every machine), and minting credentials. */
function userRoutes(app: Hono<Env>, deps: Deps, guard: MiddlewareHandler<Env>): void {
  const { config, gateway, services, signer } = deps;

  app.post("/subscribe", guard, async (c) => {
    const body = await jsonBody(c, UserTopicBody);
    gateway.permissions.asServer("subscribe", body.topic);
    return c.json(await gateway.calls.run({ op: "subscribe", user: body.user, topic: body.topic }));
  });

  app.post("/unsubscribe", guard, async (c) => {
    const body = await jsonBody(c, UserTopicBody);
    gateway.permissions.asServer("subscribe", body.topic);
    return c.json(await gateway.calls.run({ op: "unsubscribe", user: body.user, topic: body.topic }));
  });

  app.post("/disconnect", guard, async (c) => {
    const body = await jsonBody(c, DisconnectBody);
    // The revocation is stored before any socket closes: a client reconnecting at once is refused.
    if (body.revoke === true) {
      services.revocations.heardUser(body.user);
      // Announced in the write's own transaction behind the fence (as a logout): the call below may fail.
      const announcement = services.broker.fence?.announcement({ type: "revoke-user", user: body.user });
      await services.stores.userRevocations.revokeUser(body.user, Math.floor(Date.now() / 1000), announcement);
    }
    const answer = await gateway.calls.run({ op: "disconnect", user: body.user, revoke: body.revoke === true });
    // Every machine refuses the user's older credentials before the answer (the revocation fence).
    if (body.revoke === true) await services.revocations.afterRevocation();
    return c.json(answer);
  });

  app.post("/tickets", guard, async (c) => {
    const body = await jsonBody(c, TicketBody);
    const grant = { user: body.user, sid: newSessionId(), caps: body.caps, iat: Math.floor(Date.now() / 1000) };
    const ticket = await services.stores.tickets.issue(grant, config.ticketTtlS);
    return c.json({ ticket, expiresIn: config.ticketTtlS });
  });

  app.post("/tokens", guard, async (c) => {
    const body = await jsonBody(c, TokenBody);
    const ttlS = body.ttlS ?? config.tokenTtlS;
    const token = await signer.sign("token", body.user, newSessionId(), ttlS, body.caps);
    return c.json({ token, expiresIn: ttlS });
  });
}
