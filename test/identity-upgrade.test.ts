/**
 * SPEC §4 at the WebSocket endpoint, against a real server process and a real JWKS endpoint with
 * jose keys: app tokens as first-message auth, the app's cookie (AUTH_COOKIE) at the upgrade, the
 * precedence of credentials, refusals (forged, expired, alg:none, HS/RS confusion, oversized, an
 * unknown-kid flood), a key rotated in without a restart, and no credential in the logs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SignJWT, exportSPKI, importJWK } from "jose";
import { TestClient, closeAll } from "./support/client.ts";
import { upgradeStatus } from "./support/raw-ws.ts";
import { getTicket, getToken, killAllServers, login, startServer, type TestServer } from "./support/server.ts";
import { AUDIENCE, ISSUER, makeKey, serveJwks, signAppToken, signHsToken, unsignedToken, type JwksServer, type TestKey } from "./support/jwks.ts";

let jwks: JwksServer;
let key: TestKey;
let server: TestServer;
const clients: TestClient[] = [];
/** Every credential a test handed to the server: none may appear in its logs. */
const secrets: string[] = [];

beforeAll(async () => {
  key = await makeKey("RS256");
  jwks = serveJwks([key]);
  server = await startServer({
    AUTH_JWKS_URL: jwks.url,
    AUTH_ISSUER: ISSUER,
    AUTH_AUDIENCE: AUDIENCE,
    AUTH_COOKIE: "app_session",
    LOG_LEVEL: "debug",
  });
});

afterAll(async () => {
  await closeAll(clients);
  await server?.stop();
  jwks?.stop();
  killAllServers();
});

async function track(c: TestClient): Promise<TestClient> {
  clients.push(c);
  return c;
}

async function tokenSocket(token: string): Promise<TestClient> {
  secrets.push(token);
  const c = await track(new TestClient(server.wsUrl));
  await c.waitOpen();
  c.send({ type: "auth", token });
  return c;
}

describe("§4 first-message auth accepts app tokens and Switchboard tokens", () => {
  test("an app token: welcome as the token's user, whose inbox works with an IdP id", async () => {
    const c = await tokenSocket(await signAppToken(key, { sub: "auth0|64f1c2", claims: { name: "Ana" } }));
    const welcome = await c.welcome();
    expect(welcome.user).toEqual({ id: "auth0|64f1c2", name: "Ana" });
    const bob = await track(await TestClient.connect(server.wsUrl, { cookie: await login(server, "bob") }));
    await bob.publish("user:auth0|64f1c2", { text: "hi ana" });
    const [dm] = await c.waitMessages("user:auth0|64f1c2", 1);
    expect(dm!.data).toEqual({ text: "hi ana" });
  });

  test("a whole-number user claim (Django's user_id, Laravel's sub) is its decimal text; a fraction, a boolean or an unsafe integer is refused", async () => {
    const withId = (id: unknown) =>
      new SignJWT({ sub: id as string })
        .setProtectedHeader({ alg: key.alg, kid: key.kid })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime("5m")
        .sign(key.privateKey);
    const c = await tokenSocket(await withId(42));
    expect((await c.welcome()).user).toEqual({ id: "42", name: "42" });
    const bob = await track(await TestClient.connect(server.wsUrl, { cookie: await login(server, "bob") }));
    await bob.publish("user:42", { text: "hi 42" });
    expect((await c.waitMessages("user:42", 1))[0]!.data).toEqual({ text: "hi 42" });
    const refused = await Promise.all([1.5, true, 2 ** 53, -0.5].map(async (id) => tokenSocket(await withId(id))));
    for (const s of refused) expect((await s.waitClose()).code).toBe(4001);
  });

  test("a Switchboard token from /auth/token still works", async () => {
    const c = await tokenSocket(await getToken(server, "carol"));
    expect((await c.welcome()).user.id).toBe("carol");
  });

  test("forged, expired, alg:none, HS/RS confusion, wrong audience, no exp, oversized → 4001", async () => {
    const impostor = await makeKey("RS256", key.kid);
    const publicKey = await importJWK(key.publicJwk, "RS256");
    const pem = await exportSPKI(publicKey as CryptoKey);
    const nowS = Math.floor(Date.now() / 1000);
    const bad = [
      await signAppToken(impostor),
      await signAppToken(key, { expiresIn: -60 }),
      unsignedToken({ sub: "admin", iss: ISSUER, aud: AUDIENCE, exp: nowS + 60 }),
      await signHsToken(pem, { issuer: ISSUER, audience: AUDIENCE, kid: key.kid }),
      await signAppToken(key, { audience: "another-app" }),
      await signAppToken(key, { expiresIn: null }),
      await signAppToken(key, { claims: { pad: "x".repeat(9000) } }),
    ];
    const sockets = await Promise.all(bad.map((t) => tokenSocket(t)));
    for (const s of sockets) expect((await s.waitClose()).code).toBe(4001);
  });
});

describe("§4 the key set under a flood of unknown kids, and a key rotated in", () => {
  test("100 sockets with made-up kids cost at most one JWKS request; a rotated-in key works without a restart", async () => {
    const before = jwks.requests;
    const rotated = await makeKey("ES256");
    jwks.keys = [key, rotated];
    // The first unknown kid fetches the set again and finds the rotated key...
    const fresh = await tokenSocket(await signAppToken(rotated, { sub: "rotated-user" }));
    expect((await fresh.welcome()).user.id).toBe("rotated-user");
    expect(jwks.requests).toBe(before + 1);
    // ...and for 30 s no made-up kid fetches anything.
    const flood = await Promise.all(Array.from({ length: 100 }, async (_, i) => tokenSocket(await signAppToken(key, { kid: `bogus-${i}` }))));
    for (const s of flood) expect((await s.waitClose()).code).toBe(4001);
    expect(jwks.requests).toBe(before + 1);
    const old = await tokenSocket(await signAppToken(key));
    await old.welcome();
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});

describe("§4 AUTH_COOKIE at the upgrade", () => {
  test("the app's cookie authenticates the upgrade: welcome at once, no auth frame", async () => {
    const jwt = await signAppToken(key, { sub: "cookie-user", claims: { name: "Cookie" } });
    secrets.push(jwt);
    const c = await track(await TestClient.connect(server.wsUrl, { cookie: `theme=dark; app_session=${jwt}` }));
    expect(c.frames[0]!.user).toEqual({ id: "cookie-user", name: "Cookie" });
  });

  test("invalid → 401; a foreign Origin → 403; an allowed Origin works", async () => {
    const expired = await signAppToken(key, { expiresIn: -60 });
    const good = await signAppToken(key, { sub: "origin-user" });
    secrets.push(expired, good);
    expect((await upgradeStatus(server.wsUrl, { Cookie: `app_session=${expired}` })).status).toBe(401);
    expect((await upgradeStatus(server.wsUrl, { Cookie: "app_session=garbage" })).status).toBe(401);
    expect((await upgradeStatus(server.wsUrl, { Cookie: `app_session=${good}`, Origin: "http://evil.test" })).status).toBe(403);
    const c = await track(await TestClient.connect(server.wsUrl, { cookie: `app_session=${good}`, origin: server.origin }));
    expect(c.frames[0]!.user.id).toBe("origin-user");
  });

  test("an oversized app cookie → 401, no JWKS request", async () => {
    const before = jwks.requests;
    const huge = await signAppToken(key, { kid: "unknown-kid-in-a-huge-cookie", claims: { pad: "x".repeat(9000) } });
    expect((await upgradeStatus(server.wsUrl, { Cookie: `app_session=${huge}` })).status).toBe(401);
    expect(jwks.requests).toBe(before);
  });

  test("precedence: ?ticket= before the session cookie before AUTH_COOKIE", async () => {
    const appJwt = await signAppToken(key, { sub: "app-user" });
    secrets.push(appJwt);
    const session = await login(server, "alice");
    const both = await track(await TestClient.connect(server.wsUrl, { cookie: `${session}; app_session=${appJwt}` }));
    expect(both.frames[0]!.user.id).toBe("alice");
    const ticket = await getTicket(server, await login(server, "bob"));
    const withTicket = await track(await TestClient.connect(`${server.wsUrl}?ticket=${ticket}`, { cookie: `app_session=${appJwt}` }));
    expect(withTicket.frames[0]!.user.id).toBe("bob");
    // An invalid session cookie decides alone: 401, even with a valid app cookie beside it.
    expect((await upgradeStatus(server.wsUrl, { Cookie: `sb_session=forged; app_session=${appJwt}` })).status).toBe(401);
  });
});

describe("§4 app credentials on /auth/ticket", () => {
  test("an app token as Bearer gets a ticket for its user", async () => {
    const token = await signAppToken(key, { sub: "ticket-user", claims: { name: "Tic" } });
    secrets.push(token);
    const res = await fetch(`${server.url}/auth/ticket`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const { ticket } = (await res.json()) as { ticket: string };
    const c = await track(await TestClient.connect(`${server.wsUrl}?ticket=${ticket}`));
    expect(c.frames[0]!.user).toEqual({ id: "ticket-user", name: "Tic" });
  });
});

describe("§4 credentials never reach the logs", () => {
  test("no token or cookie value appears in the server's output; refusals are logged with a reason", async () => {
    await Bun.sleep(200);
    const logs = server.logs();
    expect(logs).toContain("auth failure");
    for (const secret of secrets) {
      expect(logs).not.toContain(secret);
      // Not even the signature part alone.
      const signature = secret.split(".")[2];
      if (signature !== undefined && signature.length > 16) expect(logs).not.toContain(signature);
    }
    expect(server.faults()).toEqual([]);
  });
});
