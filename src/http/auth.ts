/**
 * The auth routes (SPEC §2): login, logout, me, ticket, token. Every response is `no-store`.
 * Cookie-authenticated writes are same-origin only: a page of another origin can neither get a
 * ticket with the victim's cookie nor be handed a Set-Cookie (login CSRF).
 */
import { Hono } from "hono";
import { z } from "zod";
import { newSessionId } from "../auth/sessions.ts";
import { clearedCookie, sessionCookie } from "../auth/cookie.ts";
import { bearerOf } from "../auth/bearer.ts";
import { PasswordGate } from "../auth/password-gate.ts";
import { SlidingWindow } from "../budgets/sliding-window.ts";
import { addressKey } from "../budgets/address-key.ts";
import { budgetKeyOf, type Identity, type Presented } from "../auth/credentials.ts";
import { isAllowedOrigin, isSecure, type OriginPolicy } from "../auth/origin.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { jsonBody } from "./errors.ts";
import { cookiesOf, clientIp, type Ctx, type Deps, type Env } from "./context.ts";

const Credentials = z.object({
  username: z.string().min(1).max(128),
  password: z.string().min(1).max(1024),
});

/**
 * The login throttle window: LOGIN_MAX_FAILURES failures per username+IP (SPEC §1), and
 * LOGIN_MAX_FAILURES_PER_IP failures per IP across usernames (spraying), each in 5 minutes.
 */
export const LOGIN_WINDOW_S = 300;

/**
 * The login budget (SPEC §1, §8): the attempt is counted in both throttles (username+IP, then IP)
 * before its password is verified, so parallel guesses cannot outrun the lockout; an attempt past
 * either limit is 429 without a hash. The verification waits for a place in the password gate
 * (503 past it). A successful attempt, or one never verified, gives its places back.
 */
async function checkPassword(c: Ctx, deps: Deps, gate: PasswordGate) {
  const { config, users, services, metrics, credentials } = deps;
  const { username, password } = await jsonBody(c, Credentials);
  const ip = addressKey(clientIp(c, config)); // an IPv6 client by its /64
  const attempts = services.stores.attempts;
  const keys = [`login:${username}:${ip}`, `login-ip:${ip}`];
  const limits = [config.loginMaxFailures, config.loginMaxFailuresPerIp];
  const release = () => Promise.all(keys.map((key) => attempts.release(key)));
  const windows = await Promise.all(keys.map((key) => attempts.fail(key, LOGIN_WINDOW_S)));
  const over = windows.find((window, i) => window.count > limits[i]!);
  if (over !== undefined) {
    await release();
    metrics.loginThrottled.inc();
    throw new SwitchboardError(ErrorCode.rateLimited, "too many failed attempts; try again later", over.resetInS);
  }
  let user;
  try {
    user = await gate.run(ip, () => users.verify(username, password));
  } catch (error) {
    await release();
    throw error;
  }
  if (user === null) {
    credentials.refused("bad_credentials");
    throw new SwitchboardError(ErrorCode.unauthorized, "wrong username or password");
  }
  await release();
  return user;
}

/** Refuses a cookie-authenticated write from another origin (or a cross-site fetch without Origin). */
export function assertSameOrigin(c: Ctx, policy: OriginPolicy): void {
  const origin = c.req.header("origin");
  if (origin !== undefined) {
    if (!isAllowedOrigin(origin, c.req.raw, policy)) throw new SwitchboardError(ErrorCode.forbidden, "cross-origin request refused");
    return;
  }
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") throw new SwitchboardError(ErrorCode.forbidden, "cross-site request refused");
}

/** Who presents these credentials (checked, unrevoked), or null. */
async function identify(credentials: Deps["credentials"], presented: Presented): Promise<Identity | null> {
  const outcome = await credentials.identify(presented);
  return outcome?.ok === true ? outcome.identity : null;
}

/**
 * `POST /auth/logout`: with a bearer token, that token's session is revoked (SPEC §8); otherwise
 * the cookie's. A cookie-authenticated write like the others: another origin (even another port
 * of this host, which is same-site and so gets the Lax cookie) must not revoke the user's session.
 */
async function logout(c: Ctx, deps: Deps): Promise<Response> {
  const { config, credentials, gateway } = deps;
  const token = bearerOf(c.req.header("authorization"));
  if (token === undefined) assertSameOrigin(c, config);
  const identity = await identify(credentials, token === undefined ? { ...cookiesOf(c, config) } : { token });
  if (identity !== null && identity.sid !== null) {
    // Remembered until the session would have expired anyway, plus a minute of clock skew.
    const nowS = Math.floor(Date.now() / 1000);
    await gateway.revokeSession(identity.sid, (identity.exp ?? nowS + config.sessionTtlS) - nowS + 60);
  }
  if (token === undefined) c.header("Set-Cookie", clearedCookie(isSecure(c.req.raw, config), config.cookieDomain));
  return c.body(null, 204);
}

/**
 * `POST /auth/ticket`: a bearer token decides alone; only a cookie-authenticated request must be
 * same-origin. TICKETS_PER_MIN per session or token (per process): a ticket is cheap to ask for
 * and is held until it expires.
 */
async function mintTicket(c: Ctx, deps: Deps, budget: SlidingWindow): Promise<Response> {
  const { config, credentials, services } = deps;
  const token = bearerOf(c.req.header("authorization"));
  if (token === undefined) assertSameOrigin(c, config);
  const identity = await identify(credentials, token === undefined ? { ...cookiesOf(c, config) } : { token });
  if (identity === null) throw new SwitchboardError(ErrorCode.unauthorized, "sign in first");
  const budgetKey = budgetKeyOf(identity);
  if (!budget.take(budgetKey, Date.now())) {
    throw new SwitchboardError(ErrorCode.rateLimited, `at most ${config.ticketsPerMin} tickets per minute`, budget.retryAfterS(budgetKey, Date.now()));
  }
  const grant = { user: identity.user, sid: identity.sid, caps: identity.caps, exp: identity.exp, iat: Math.floor(Date.now() / 1000) };
  const ticket = await services.stores.tickets.issue(grant, config.ticketTtlS);
  return c.json({ ticket, expiresIn: config.ticketTtlS });
}

export function authRoutes(deps: Deps): Hono<Env> {
  const { config, signer, credentials } = deps;
  const app = new Hono<Env>();
  const gate = new PasswordGate();
  const ticketBudget = new SlidingWindow(config.ticketsPerMin, 60_000);
  const sweep = setInterval(() => ticketBudget.sweep(Date.now()), 60_000);
  sweep.unref();
  const checkCredentials = (c: Ctx) => checkPassword(c, deps, gate);
  const session = (c: Ctx) => identify(credentials, { ...cookiesOf(c, config) });

  // Without users (production with USERS empty: identity comes from the app, SPEC §4) the
  // built-in login and token routes do not exist: 404.
  const builtInLogin = deps.users.size > 0;

  if (builtInLogin) app.post("/login", async (c) => {
    assertSameOrigin(c, config);
    const user = await checkCredentials(c);
    const jwt = await signer.sign("session", user, newSessionId(), config.sessionTtlS);
    c.header("Set-Cookie", sessionCookie(jwt, config.sessionTtlS, isSecure(c.req.raw, config), config.cookieDomain));
    return c.json({ user });
  });

  app.post("/logout", (c) => logout(c, deps));

  app.get("/me", async (c) => {
    const identity = await session(c);
    if (identity === null) throw new SwitchboardError(ErrorCode.unauthorized, "not signed in");
    return c.json({ user: identity.user });
  });

  if (builtInLogin) app.post("/token", async (c) => {
    const user = await checkCredentials(c);
    const token = await signer.sign("token", user, newSessionId(), config.tokenTtlS);
    return c.json({ token, expiresIn: config.tokenTtlS });
  });

  app.post("/ticket", (c) => mintTicket(c, deps, ticketBudget));

  return app;
}

