/**
 * The auth routes (SPEC §2): login, logout, me, ticket, token. Every response is `no-store`.
 * Cookie-authenticated writes are same-origin only: a page of another origin can neither get a
 * ticket with the victim's cookie nor be handed a Set-Cookie (login CSRF).
 */
import { Hono } from "hono";
import { z } from "zod";
import type { Claims } from "../auth/sessions.ts";
import { newSessionId } from "../auth/sessions.ts";
import { clearedCookie, readSessionCookie, sessionCookie } from "../auth/cookie.ts";
import { isAllowedOrigin, isSecure } from "../auth/origin.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { jsonBody } from "./errors.ts";
import { clientIp, type Ctx, type Deps, type Env } from "./context.ts";

const Credentials = z.object({
  username: z.string().min(1).max(128),
  password: z.string().min(1).max(1024),
});

/**
 * The login throttle window: LOGIN_MAX_FAILURES failures per username+IP (SPEC §1), and
 * LOGIN_MAX_FAILURES_PER_IP failures per IP across usernames (spraying), each in 5 minutes.
 */
export const LOGIN_WINDOW_S = 300;

export function authRoutes(deps: Deps): Hono<Env> {
  const { config, signer, users, services, gateway, metrics } = deps;
  const app = new Hono<Env>();

  /** Checks both throttles (username+IP, then IP), then the password; counts failures in both. */
  async function checkCredentials(c: Ctx) {
    const { username, password } = await jsonBody(c, Credentials);
    const ip = clientIp(c, config);
    const key = `login:${username}:${ip}`;
    const ipKey = `login-ip:${ip}`;
    const [window, ipWindow] = await Promise.all([services.stores.attempts.get(key), services.stores.attempts.get(ipKey)]);
    const over = window.count >= config.loginMaxFailures ? window : ipWindow.count >= config.loginMaxFailuresPerIp ? ipWindow : null;
    if (over !== null) {
      metrics.loginThrottled.inc();
      throw new SwitchboardError(ErrorCode.rateLimited, "too many failed attempts; try again later", over.resetInS);
    }
    const user = await users.verify(username, password);
    if (user === null) {
      await Promise.all([services.stores.attempts.fail(key, LOGIN_WINDOW_S), services.stores.attempts.fail(ipKey, LOGIN_WINDOW_S)]);
      gateway.noteAuthFailure("bad_credentials");
      throw new SwitchboardError(ErrorCode.unauthorized, "wrong username or password");
    }
    return user;
  }

  /** The valid, unrevoked session of the request's cookie, or null. */
  async function session(c: Ctx): Promise<Claims | null> {
    const jwt = readSessionCookie(c.req.header("cookie"));
    return jwt === null ? null : gateway.verify("session", jwt);
  }

  function assertSameOrigin(c: Ctx): void {
    const origin = c.req.header("origin");
    if (origin !== undefined) {
      if (!isAllowedOrigin(origin, c.req.raw, config)) throw new SwitchboardError(ErrorCode.forbidden, "cross-origin request refused");
      return;
    }
    const site = c.req.header("sec-fetch-site");
    if (site !== undefined && site !== "same-origin" && site !== "none") throw new SwitchboardError(ErrorCode.forbidden, "cross-site request refused");
  }

  app.post("/login", async (c) => {
    assertSameOrigin(c);
    const user = await checkCredentials(c);
    const jwt = await signer.sign("session", user, newSessionId(), config.sessionTtlS);
    c.header("Set-Cookie", sessionCookie(jwt, config.sessionTtlS, isSecure(c.req.raw, config)));
    return c.json({ user });
  });

  app.post("/logout", async (c) => {
    // A cookie-authenticated write like the others: another origin (even another port of this
    // host, which is same-site and so gets the Lax cookie) must not revoke the user's session.
    assertSameOrigin(c);
    const claims = await session(c);
    if (claims !== null) await gateway.revokeSession(claims.sid, claims.exp - Math.floor(Date.now() / 1000) + 60);
    c.header("Set-Cookie", clearedCookie(isSecure(c.req.raw, config)));
    return c.body(null, 204);
  });

  app.get("/me", async (c) => {
    const claims = await session(c);
    if (claims === null) throw new SwitchboardError(ErrorCode.unauthorized, "not signed in");
    return c.json({ user: claims.user });
  });

  app.post("/token", async (c) => {
    const user = await checkCredentials(c);
    const token = await signer.sign("token", user, newSessionId(), config.tokenTtlS);
    return c.json({ token, expiresIn: config.tokenTtlS });
  });

  app.post("/ticket", async (c) => {
    const bearer = c.req.header("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
    let claims: Claims | null;
    if (bearer !== undefined) {
      claims = await gateway.verify("token", bearer);
    } else {
      assertSameOrigin(c);
      claims = await session(c);
    }
    if (claims === null) throw new SwitchboardError(ErrorCode.unauthorized, "sign in first");
    const ticket = await services.stores.tickets.issue({ user: claims.user, sid: claims.sid }, config.ticketTtlS);
    return c.json({ ticket, expiresIn: config.ticketTtlS });
  });

  return app;
}

