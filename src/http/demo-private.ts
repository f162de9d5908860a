/**
 * The demo chat's private rooms (issue 13): `private:<name>-<random>` topics in the demo's
 * `private` namespace (subscribe and publish by caps only, presence on; auth/namespaces.ts
 * DEMO_PRIVATE). Exists only for the demo as shipped (`Config.demo`); elsewhere these routes are 404.
 *
 * Membership is a signed **grant** (HS256 JWT, audience `demo-grant`, with a key derived from
 * SESSION_SECRET, so it can never stand in for a session or token): "user U may use topic T".
 * Nothing is stored on the server, so it works alike on one process, with WORKERS and Redis; the
 * page keeps its grants (localStorage) and shows them back:
 *
 * - `POST /demo/rooms {name}` → a new room, and its creator's grant.
 * - `POST /demo/invite {topic, user, grant}` → the inviter proves membership with its own grant;
 *   the invitee's grant goes to its inbox `user:<id>` (a server publication), then the server API's
 *   subscribe (the same call as `POST /api/subscribe`, in process) joins every open socket of the
 *   invitee on every machine, whose page shows the room at once (`subscribed`).
 * - `POST /demo/ticket {grants}` → a ticket whose caps are the demo's usual rights plus the rooms
 *   of the valid grants: the page connects with it, so a reconnect or reload keeps the rooms.
 * - `POST /demo/token {grants}` → the same caps in a token (TOKEN_TTL_S) the open socket takes
 *   in-band (`refresh`, SPEC §4): a room granted while connected can be written to at once. The
 *   socket then expires with the token: the page answers its `expiring` with a fresh one.
 *
 * Every route is cookie-authenticated and same-origin only (403), signed-in only (401).
 * A refusal acts on nothing. Grants last as long as a session (SESSION_TTL_S).
 */
import { createHmac } from "node:crypto";
import { Hono } from "hono";
import { SignJWT } from "jose/jwt/sign";
import { jwtVerify } from "jose/jwt/verify";
import { z } from "zod";
import { budgetKeyOf, type Identity } from "../auth/credentials.ts";
import type { Caps } from "../auth/caps.ts";
import { SlidingWindow } from "../budgets/sliding-window.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { assertSameOrigin } from "./auth.ts";
import { jsonBody } from "./errors.ts";
import { cookiesOf, type Ctx, type Deps, type Env } from "./context.ts";

/** What every demo socket may do besides its private rooms: the built-in namespaces' defaults. */
export const DEMO_BASE_CAPS: Caps = {
  "room:*": ["subscribe", "publish", "presence", "history"],
  "user:*": ["publish"],
  "broadcast:*": ["subscribe", "history"],
};
const MEMBER_ACTIONS = ["subscribe", "publish", "presence", "history"] as const;

const ROOM_NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const PRIVATE_TOPIC = /^private:[A-Za-z0-9_.-]{1,100}-[0-9a-f]{12}$/;
const Grant = z.string().min(1).max(2048);
const NewRoomBody = z.strictObject({ name: z.string().regex(ROOM_NAME, { error: "a room name uses A-Z a-z 0-9 _ . - (1-100)" }) });
const InviteBody = z.strictObject({
  topic: z.string().regex(PRIVATE_TOPIC, { error: "must be a private room topic" }),
  user: z.string().min(1).max(128),
  grant: Grant,
});
const GrantsBody = z.strictObject({ grants: z.array(Grant).max(100) });

/** Signs and checks grants with a key of their own (derived from SESSION_SECRET). */
export class DemoGrants {
  readonly #key: Uint8Array;

  constructor(
    sessionSecret: Uint8Array,
    private readonly ttlS: number,
  ) {
    this.#key = new Uint8Array(createHmac("sha256", sessionSecret).update("switchboard demo private-room grants").digest());
  }

  sign(userId: string, topic: string): Promise<string> {
    return new SignJWT({ topic })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(userId)
      .setAudience("demo-grant")
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + this.ttlS)
      .sign(this.#key);
  }

  /** The topic the grant gives `userId`, or null (forged, expired, someone else's, malformed). */
  async topicOf(grant: string, userId: string): Promise<string | null> {
    try {
      const { payload } = await jwtVerify(grant, this.#key, { audience: "demo-grant", subject: userId, algorithms: ["HS256"] });
      return typeof payload.topic === "string" && PRIVATE_TOPIC.test(payload.topic) ? payload.topic : null;
    } catch {
      return null;
    }
  }

  /** The demo's caps for a user holding these grants (invalid ones are skipped). */
  async capsFor(userId: string, grants: string[]): Promise<Caps> {
    const caps: Caps = { ...DEMO_BASE_CAPS };
    for (const topic of await Promise.all(grants.map((g) => this.topicOf(g, userId)))) {
      if (topic !== null) caps[topic] = [...MEMBER_ACTIONS];
    }
    return caps;
  }
}

function randomSuffix(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex");
}

/**
 * `POST /demo/invite`: a member of a private room (`grant` for `topic`) invites a demo user: the
 * invitee's grant goes to their inbox, then the server API subscribes their sockets.
 */
async function invite(c: Ctx, gateway: Deps["gateway"], grants: DemoGrants, known: ReadonlySet<string>, me: Identity): Promise<Response> {
  const body = await jsonBody(c, InviteBody);
  if (!known.has(body.user)) throw new SwitchboardError(ErrorCode.notFound, `no demo user ${body.user}`);
  if ((await grants.topicOf(body.grant, me.user.id)) !== body.topic) throw new SwitchboardError(ErrorCode.forbidden, `you are not in ${body.topic}`);
  gateway.permissions.asServer("subscribe", body.topic);
  const grant = await grants.sign(body.user, body.topic);
  // The grant first, so that the invitee's page holds it when the room appears.
  await gateway.publish(`user:${body.user}`, { from: "server", data: { type: "private-invite", topic: body.topic, grant, by: me.user.id }, ts: Date.now() });
  const answer = await gateway.calls.run({ op: "subscribe", user: body.user, topic: body.topic });
  return c.json({ topic: body.topic, user: body.user, ...answer });
}

export function demoPrivateRoutes(deps: Deps): Hono<Env> {
  const { config, credentials, gateway, services, signer } = deps;
  const app = new Hono<Env>();
  const grants = new DemoGrants(config.sessionSecret, config.sessionTtlS);
  const known = new Set(config.users.map((u) => u.name));
  // Like /auth/ticket (SPEC §8): tickets and tokens per session per minute.
  const budget = new SlidingWindow(config.ticketsPerMin, 60_000);
  const sweep = setInterval(() => budget.sweep(Date.now()), 60_000);
  sweep.unref();

  /** The signed-in user of a same-origin request; 403 cross-origin, 401 otherwise. */
  async function signedIn(c: Ctx): Promise<Identity> {
    assertSameOrigin(c, config);
    const outcome = await credentials.identify({ ...cookiesOf(c, config) });
    if (outcome?.ok !== true) throw new SwitchboardError(ErrorCode.unauthorized, "sign in first");
    return outcome.identity;
  }

  function spend(identity: Identity): void {
    const key = budgetKeyOf(identity);
    if (!budget.take(key, Date.now())) throw new SwitchboardError(ErrorCode.rateLimited, `at most ${config.ticketsPerMin} per minute`, budget.retryAfterS(key, Date.now()));
  }

  app.post("/demo/rooms", async (c) => {
    const me = await signedIn(c);
    const { name } = await jsonBody(c, NewRoomBody);
    const topic = `private:${name}-${randomSuffix()}`;
    return c.json({ topic, grant: await grants.sign(me.user.id, topic) }, 201);
  });

  app.post("/demo/invite", async (c) => invite(c, gateway, grants, known, await signedIn(c)));

  app.post("/demo/ticket", async (c) => {
    const me = await signedIn(c);
    const body = await jsonBody(c, GrantsBody);
    spend(me);
    const caps = await grants.capsFor(me.user.id, body.grants);
    const ticket = await services.stores.tickets.issue({ user: me.user, sid: me.sid, caps, exp: me.exp, iat: Math.floor(Date.now() / 1000) }, config.ticketTtlS);
    return c.json({ ticket, expiresIn: config.ticketTtlS });
  });

  app.post("/demo/token", async (c) => {
    const me = await signedIn(c);
    const body = await jsonBody(c, GrantsBody);
    spend(me);
    if (me.sid === null) throw new SwitchboardError(ErrorCode.unauthorized, "sign in first");
    const caps = await grants.capsFor(me.user.id, body.grants);
    // TOKEN_TTL_S, never past the session: page JavaScript holds it (the cookie it stands in for is
    // HttpOnly), so it is short; the socket is told `expiring` and the page refreshes it again.
    const nowS = Math.floor(Date.now() / 1000);
    const ttlS = Math.max(1, Math.min(config.tokenTtlS, (me.exp ?? nowS + config.tokenTtlS) - nowS));
    return c.json({ token: await signer.sign("token", me.user, me.sid, ttlS, caps), expiresIn: ttlS });
  });

  return app;
}
