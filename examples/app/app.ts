/**
 * An application with its own login, in front of Switchboard (README "Use your own login").
 *
 * It knows its users, checks their passwords and keeps them signed in with its own HttpOnly
 * cookie holding a JWT signed by its own key (ES256, generated at start). It publishes the public
 * key at `/.well-known/jwks.json`; Switchboard, started with
 *
 *   AUTH_JWKS_URL=<this app>/.well-known/jwks.json  AUTH_ISSUER=<this app's origin>
 *   AUTH_AUDIENCE=switchboard  AUTH_COOKIE=app_session  ALLOWED_ORIGINS=<this app's origin>
 *
 * verifies that cookie at the WebSocket upgrade: the page connects with no token and no ticket.
 * Switchboard never sees a password, and this app never shares a secret with it.
 */
import { Hono } from "hono";
import { SignJWT, exportJWK, generateKeyPair, jwtVerify, createLocalJWKSet, type JWK } from "jose";
import { page } from "./page.ts";

export const COOKIE = "app_session";
export const AUDIENCE = "switchboard";
/** The app's own session length; the socket lives as long (Switchboard closes it with 4001 then). */
const SESSION_S = 8 * 3600;

export interface ExampleOptions {
  /** This app's public origin, e.g. http://localhost:3001 (also the tokens' issuer). */
  origin: string;
  /** Switchboard's public URL, e.g. http://localhost:3000. */
  switchboardUrl: string;
  /** `name:password` pairs. */
  users: string;
}

export async function createExampleApp(options: ExampleOptions): Promise<Hono> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const kid = `example-${crypto.randomUUID().slice(0, 8)}`;
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  const keys = createLocalJWKSet({ keys: [jwk] });
  const users = await hashUsers(options.users);
  const app = new Hono();

  const sign = (id: string) =>
    new SignJWT({
      name: displayName(id),
      // Capabilities (SPEC §5): every room, direct messages to anyone. Your app decides.
      caps: { "room:*": ["subscribe", "publish", "presence", "history"], "user:*": ["publish"] },
    })
      .setProtectedHeader({ alg: "ES256", kid })
      .setSubject(id)
      .setIssuer(options.origin)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${SESSION_S}s`)
      .sign(privateKey);

  const cookieUser = async (header: string | undefined) => {
    const jwt = header?.split(";").map((p) => p.trim()).find((p) => p.startsWith(`${COOKIE}=`))?.slice(COOKIE.length + 1);
    if (!jwt) return null;
    try {
      const { payload } = await jwtVerify(jwt, keys, { issuer: options.origin, audience: AUDIENCE });
      return { id: payload.sub!, name: String(payload.name ?? payload.sub) };
    } catch {
      return null;
    }
  };

  app.get("/.well-known/jwks.json", (c) => c.json({ keys: [jwk] }));

  app.post("/login", async (c) => {
    const body = (await c.req.json().catch(() => null)) as { username?: unknown; password?: unknown } | null;
    const name = typeof body?.username === "string" ? body.username : "";
    const hash = users.get(name);
    const ok = hash !== undefined && typeof body?.password === "string" && (await Bun.password.verify(body.password, hash));
    if (!ok) return c.json({ error: { code: "unauthorized", message: "wrong username or password" } }, 401);
    c.header("Set-Cookie", `${COOKIE}=${await sign(name)}; Max-Age=${SESSION_S}; Path=/; HttpOnly; SameSite=Lax`);
    return c.json({ user: { id: name, name: displayName(name) } });
  });

  app.post("/logout", (c) => {
    c.header("Set-Cookie", `${COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax`);
    return c.body(null, 204);
  });

  app.get("/me", async (c) => {
    const user = await cookieUser(c.req.header("cookie"));
    return user ? c.json({ user }) : c.json({ error: { code: "unauthorized", message: "not signed in" } }, 401);
  });

  app.get("/", (c) => c.html(page(options.switchboardUrl)));
  return app;
}

function displayName(id: string): string {
  return id.charAt(0).toUpperCase() + id.slice(1);
}

async function hashUsers(pairs: string): Promise<Map<string, string>> {
  const users = new Map<string, string>();
  for (const pair of pairs.split(",").map((p) => p.trim()).filter(Boolean)) {
    const colon = pair.indexOf(":");
    if (colon > 0) users.set(pair.slice(0, colon), await Bun.password.hash(pair.slice(colon + 1)));
  }
  return users;
}
