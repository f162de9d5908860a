/**
 * SPEC §4 on the HTTP side, against real server processes: CORS with credentials on /auth/* for
 * ALLOWED_ORIGINS (and nothing for other origins), COOKIE_DOMAIN, and production with USERS empty.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cookiePair, killAllServers, login, postJson, readJson, spawnServer, startServer, TEST_ENV, type TestServer } from "./support/server.ts";

const SPA = "http://spa.test:5173";
const EVIL = "http://evil.test";

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ ALLOWED_ORIGINS: `${SPA},https://other.example` });
});
afterAll(async () => {
  await server?.stop();
  killAllServers();
});

function preflight(origin: string, path = "/auth/ticket") {
  return fetch(`${server.url}${path}`, {
    method: "OPTIONS",
    headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type" },
  });
}

describe("§4 CORS with credentials on /auth/*", () => {
  test("a preflight from an ALLOWED_ORIGINS entry is answered with that origin and credentials", async () => {
    const res = await preflight(SPA);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(SPA);
    expect(res.headers.get("access-control-allow-credentials")).toBe("true");
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("content-type");
  });

  test("a preflight from any other origin gets 403 and no Access-Control-Allow-Origin", async () => {
    for (const origin of [EVIL, `${SPA}.evil.test`, "null", SPA.replace("5173", "5174")]) {
      const res = await preflight(origin);
      const { status, body } = await readJson(res);
      expect(status).toBe(403);
      expect(body).toEqual({ error: { code: "forbidden", message: "origin not allowed" } });
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
    }
  });

  test("login, me and ticket from the SPA's origin carry CORS headers; POST /auth/ticket accepts that origin", async () => {
    const res = await postJson(server, "/auth/login", { username: "alice", password: "alice-password" }, { Origin: SPA });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(SPA);
    expect(res.headers.get("access-control-allow-credentials")).toBe("true");
    expect(res.headers.get("vary")).toContain("Origin");
    const cookie = cookiePair(res.headers.get("set-cookie")!);
    await res.text();

    const me = await fetch(`${server.url}/auth/me`, { headers: { Origin: SPA, Cookie: cookie } });
    expect(me.status).toBe(200);
    expect(me.headers.get("access-control-allow-origin")).toBe(SPA);
    await me.text();

    const ticket = await fetch(`${server.url}/auth/ticket`, { method: "POST", headers: { Origin: SPA, Cookie: cookie } });
    const read = await readJson(ticket);
    expect(read.status).toBe(200);
    expect(typeof read.body.ticket).toBe("string");
    expect(ticket.headers.get("access-control-allow-origin")).toBe(SPA);
  });

  test("another origin: no Access-Control-Allow-Origin, and the ticket is refused", async () => {
    const cookie = await login(server, "bob");
    const me = await fetch(`${server.url}/auth/me`, { headers: { Origin: EVIL, Cookie: cookie } });
    expect(me.headers.get("access-control-allow-origin")).toBeNull();
    expect(me.headers.get("access-control-allow-credentials")).toBeNull();
    await me.text();
    const ticket = await fetch(`${server.url}/auth/ticket`, { method: "POST", headers: { Origin: EVIL, Cookie: cookie } });
    expect(ticket.status).toBe(403);
    expect(ticket.headers.get("access-control-allow-origin")).toBeNull();
    expect((await readJson(ticket)).body.error.code).toBe("forbidden");
  });

  test("routes outside /auth/* get no CORS", async () => {
    const res = await fetch(`${server.url}/healthz`, { headers: { Origin: SPA } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    await res.text();
  });
});

describe("§4 COOKIE_DOMAIN", () => {
  test("the session cookie is Domain=<it>; Secure, without the __Host- prefix; logout clears the same cookie", async () => {
    const s = await startServer({ COOKIE_DOMAIN: "example.test", TRUST_PROXY: "true" });
    try {
      const res = await postJson(s, "/auth/login", { username: "carol", password: "carol-password" });
      expect(res.status).toBe(200);
      await res.text();
      const setCookie = res.headers.get("set-cookie")!;
      expect(setCookie).toMatch(/^sb_session=[^;]+;/);
      expect(setCookie).toContain("; Domain=example.test");
      expect(setCookie).toContain("; Secure");
      expect(setCookie).toContain("; HttpOnly");
      expect(setCookie).not.toContain("__Host-");
      // Over https behind a trusted proxy, still the shareable cookie (not __Host-).
      const https = await postJson(s, "/auth/login", { username: "carol", password: "carol-password" }, { "X-Forwarded-Proto": "https" });
      await https.text();
      expect(https.headers.get("set-cookie")).not.toContain("__Host-");

      const cookie = cookiePair(setCookie);
      const me = await fetch(`${s.url}/auth/me`, { headers: { Cookie: cookie } });
      expect(me.status).toBe(200);
      await me.text();
      const out = await fetch(`${s.url}/auth/logout`, { method: "POST", headers: { Cookie: cookie, Origin: s.origin } });
      expect(out.status).toBe(204);
      expect(out.headers.get("set-cookie")).toMatch(/^sb_session=; Max-Age=0; Domain=example.test;/);
    } finally {
      await s.stop();
    }
  });
});

describe("§4 production with USERS empty", () => {
  test("/auth/login and /auth/token answer 404; the rest of /auth stays", async () => {
    const s = await startServer({ NODE_ENV: "production", USERS: undefined });
    try {
      for (const path of ["/auth/login", "/auth/token"]) {
        const { status, body } = await readJson(await postJson(s, path, { username: "alice", password: "alice-password" }));
        expect(status).toBe(404);
        expect(body.error.code).toBe("not_found");
      }
      expect((await readJson(await fetch(`${s.url}/auth/me`))).status).toBe(401);
    } finally {
      await s.stop();
    }
  });
});

describe("§4 settings refused at start, in one line", () => {
  test("AUTH_COOKIE without AUTH_JWKS_URL or AUTH_JWT_SECRET; AUTH_JWKS_URL without AUTH_ISSUER/AUTH_AUDIENCE", async () => {
    const cases: [Record<string, string>, string][] = [
      [{ AUTH_COOKIE: "app_session" }, "AUTH_COOKIE needs AUTH_JWKS_URL or AUTH_JWT_SECRET"],
      [{ AUTH_JWKS_URL: "http://127.0.0.1:9/jwks.json" }, "AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE"],
      [{ AUTH_JWT_SECRET: TEST_ENV.SESSION_SECRET! }, "AUTH_JWT_SECRET must differ from SESSION_SECRET"],
      [{ AUTH_CONNECT_URL: "http://127.0.0.1:9/connect" }, "AUTH_CONNECT_URL needs WEBHOOK_SECRET"],
    ];
    for (const [env, line] of cases) {
      const spawned = spawnServer({ ...TEST_ENV, PORT: "0", ...env });
      expect(await spawned.exited).toBe(1);
      const err = spawned.stderr().trim();
      expect(err.split("\n")).toHaveLength(1);
      expect(err).toContain(line);
    }
  });
});
