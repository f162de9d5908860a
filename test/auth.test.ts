/**
 * SPEC §2, the authentication HTTP API, seen from an HTTP client of a real server process.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { getToken, login, loginSession, postJson, readJson, startServer, type TestServer, killAllServers } from "./support/server.ts";

let server: TestServer;

// dave and erin exist only to be throttled; the others keep working meanwhile.
const USERS = "alice:alice-password,bob:bob-password,carol:carol-password,dave:dave-password,erin:erin-password,frank:frank-password";

beforeAll(async () => {
  server = await startServer({ USERS, LOGIN_MAX_FAILURES: "3", ALLOWED_ORIGINS: "https://app.example.test" });
}, 30_000);
afterAll(() => server?.kill());

/** Every error body is `{error:{code,message}}` and carries no stack trace. */
function expectErrorBody(r: { body: any; text: string }, code?: string) {
  expect(r.body).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
  if (code) expect(r.body.error.code).toBe(code);
  expect(r.text).not.toMatch(/\n\s+at |\.ts:\d+|stack/i);
}

function parseSetCookie(header: string) {
  const [pair, ...attrs] = header.split(";").map((s) => s.trim());
  const [name, ...rest] = pair!.split("=");
  return {
    name: name!,
    value: rest.join("="),
    attrs: attrs.map((a) => a.toLowerCase()),
    attr(name: string) {
      const hit = attrs.find((a) => a.toLowerCase().startsWith(`${name.toLowerCase()}=`));
      return hit?.slice(name.length + 1);
    },
  };
}

describe("POST /auth/login", () => {
  test("good credentials → 200 {user:{id,name}} and an HttpOnly, SameSite=Lax, Path=/ session cookie (no Secure over http)", async () => {
    const r = await readJson(await postJson(server, "/auth/login", { username: "alice", password: "alice-password" }));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ user: { id: expect.any(String), name: "alice" } });
    expect(r.headers.get("cache-control")).toContain("no-store");
    const c = parseSetCookie(r.headers.get("set-cookie") ?? "");
    expect(c.value.length).toBeGreaterThan(10);
    expect(c.name.startsWith("__Host-")).toBe(false);
    expect(c.attrs).toContain("httponly");
    expect(c.attrs).toContain("samesite=lax");
    expect(c.attrs).toContain("path=/");
    expect(c.attrs).not.toContain("secure");
  });

  test("an invalid body → 400 with a JSON error and no zod dump", async () => {
    for (const body of ["{not json", JSON.stringify({ username: "alice" }), JSON.stringify({ username: 5, password: [] }), "[]"]) {
      const r = await readJson(await postJson(server, "/auth/login", body));
      expect(r.status).toBe(400);
      expectErrorBody(r);
      expect(r.text).not.toContain("invalid_type");
    }
  });

  test("a wrong password or an unknown user → 401", async () => {
    const wrong = await readJson(await postJson(server, "/auth/login", { username: "frank", password: "nope" }));
    expect(wrong.status).toBe(401);
    expectErrorBody(wrong);
    expect(wrong.headers.get("set-cookie")).toBeNull();
    const unknown = await readJson(await postJson(server, "/auth/login", { username: "mallory", password: "x" }));
    expect(unknown.status).toBe(401);
    expectErrorBody(unknown);
  });

  test("past LOGIN_MAX_FAILURES for a username+IP every attempt, even the right password, gets 429 with Retry-After", async () => {
    for (let i = 0; i < 3; i++) {
      const r = await postJson(server, "/auth/login", { username: "dave", password: `wrong-${i}` });
      await r.arrayBuffer();
      expect(r.status).toBe(401);
    }
    const right = await readJson(await postJson(server, "/auth/login", { username: "dave", password: "dave-password" }));
    expect(right.status).toBe(429);
    expectErrorBody(right);
    const retryAfter = Number(right.headers.get("retry-after"));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(300);
    // Another username from the same IP is not affected.
    const other = await postJson(server, "/auth/login", { username: "bob", password: "bob-password" });
    await other.arrayBuffer();
    expect(other.status).toBe(200);
  });

  test("successful logins do not count toward the limit (4 in a row with LOGIN_MAX_FAILURES=3)", async () => {
    for (let i = 0; i < 4; i++) {
      const r = await postJson(server, "/auth/login", { username: "carol", password: "carol-password" });
      await r.arrayBuffer();
      expect(r.status).toBe(200);
    }
  });
  killAllServers();
});

describe("GET /auth/me", () => {
  test("with the cookie → 200 {user}", async () => {
    const s = await loginSession(server, "alice");
    const r = await readJson(await fetch(`${server.url}/auth/me`, { headers: { Cookie: s.cookie } }));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ user: s.user });
    expect(r.headers.get("cache-control")).toContain("no-store");
  });

  test("without a cookie, or with a forged one → 401", async () => {
    const none = await readJson(await fetch(`${server.url}/auth/me`));
    expect(none.status).toBe(401);
    expectErrorBody(none);
    const cookie = await login(server, "alice");
    const [name, value] = cookie.split("=") as [string, string];
    const tampered = `${name}=${value.slice(0, -3)}${value.endsWith("AAA") ? "BBB" : "AAA"}`;
    const forged = await readJson(await fetch(`${server.url}/auth/me`, { headers: { Cookie: tampered } }));
    expect(forged.status).toBe(401);
    expectErrorBody(forged);
  });
});

describe("POST /auth/logout", () => {
  test("204, clears the cookie, revokes that session only", async () => {
    const first = await login(server, "bob");
    const second = await login(server, "bob");
    const res = await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Cookie: first, Origin: server.origin } });
    await res.arrayBuffer();
    expect(res.status).toBe(204);
    const cleared = parseSetCookie(res.headers.get("set-cookie") ?? "");
    expect(cleared.name).toBe(first.split("=")[0]!);
    const maxAge = cleared.attr("max-age");
    const expires = cleared.attr("expires");
    expect(maxAge === "0" || (expires !== undefined && Date.parse(expires) < Date.now())).toBe(true);

    const revoked = await fetch(`${server.url}/auth/me`, { headers: { Cookie: first } });
    await revoked.arrayBuffer();
    expect(revoked.status).toBe(401);
    const other = await fetch(`${server.url}/auth/me`, { headers: { Cookie: second } });
    await other.arrayBuffer();
    expect(other.status).toBe(200);
  });
});

describe("POST /auth/token", () => {
  test("good credentials → 200 {token, expiresIn}, no-store", async () => {
    const r = await readJson(await postJson(server, "/auth/token", { username: "alice", password: "alice-password" }));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ token: expect.any(String), expiresIn: expect.any(Number) });
    expect(r.body.token.split(".")).toHaveLength(3); // a JWT
    expect(r.body.expiresIn).toBeGreaterThan(0);
    expect(r.headers.get("cache-control")).toContain("no-store");
  });

  test("invalid body → 400, bad credentials → 401", async () => {
    const bad = await readJson(await postJson(server, "/auth/token", "{"));
    expect(bad.status).toBe(400);
    expectErrorBody(bad);
    const wrong = await readJson(await postJson(server, "/auth/token", { username: "alice", password: "nope" }));
    expect(wrong.status).toBe(401);
    expectErrorBody(wrong);
  });

  test("past LOGIN_MAX_FAILURES → 429 with Retry-After, even with the right password", async () => {
    for (let i = 0; i < 3; i++) {
      const r = await postJson(server, "/auth/token", { username: "erin", password: `wrong-${i}` });
      await r.arrayBuffer();
      expect(r.status).toBe(401);
    }
    const r = await readJson(await postJson(server, "/auth/token", { username: "erin", password: "erin-password" }));
    expect(r.status).toBe(429);
    expectErrorBody(r);
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});

describe("POST /auth/ticket", () => {
  async function ticket(headers: Record<string, string>) {
    return readJson(await fetch(`${server.url}/auth/ticket`, { method: "POST", headers }));
  }

  test("cookie from the server's own origin → 200 {ticket, expiresIn}, no-store", async () => {
    const cookie = await login(server, "alice");
    const r = await ticket({ Cookie: cookie, Origin: server.origin });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ ticket: expect.any(String), expiresIn: expect.any(Number) });
    expect(r.body.ticket.length).toBeGreaterThanOrEqual(16);
    expect(r.body.expiresIn).toBeGreaterThan(0);
    expect(r.body.expiresIn).toBeLessThanOrEqual(30);
    expect(r.headers.get("cache-control")).toContain("no-store");
  });

  test("cookie from an exact ALLOWED_ORIGINS entry → 200", async () => {
    const cookie = await login(server, "alice");
    const r = await ticket({ Cookie: cookie, Origin: "https://app.example.test" });
    expect(r.status).toBe(200);
  });

  test("cookie without Origin but with Sec-Fetch-Site same-origin or none → 200", async () => {
    const cookie = await login(server, "alice");
    for (const site of ["same-origin", "none"]) {
      const r = await ticket({ Cookie: cookie, "Sec-Fetch-Site": site });
      expect(r.status).toBe(200);
    }
  });

  test("cookie from another origin → 403", async () => {
    const cookie = await login(server, "alice");
    for (const origin of ["http://evil.example", "null", "https://app.example.test.evil.com", "http://app.example.test", `http://127.0.0.1:${server.port}.evil.com`, `http://127.0.0.1:${server.port + 1}`]) {
      const r = await ticket({ Cookie: cookie, Origin: origin });
      expect(r.status).toBe(403);
      expectErrorBody(r);
    }
  });

  test("cookie without Origin and Sec-Fetch-Site cross-site or same-site → 403", async () => {
    const cookie = await login(server, "alice");
    for (const site of ["cross-site", "same-site"]) {
      const r = await ticket({ Cookie: cookie, "Sec-Fetch-Site": site });
      expect(r.status).toBe(403);
      expectErrorBody(r);
    }
  });

  test("a bearer token from /auth/token → 200", async () => {
    const token = await getToken(server, "carol");
    const r = await ticket({ Authorization: `Bearer ${token}` });
    expect(r.status).toBe(200);
    expect(r.body.ticket).toEqual(expect.any(String));
  });

  test("no credentials, a bad bearer token, or a revoked cookie → 401", async () => {
    const none = await ticket({});
    expect(none.status).toBe(401);
    expectErrorBody(none);
    const bad = await ticket({ Authorization: "Bearer not.a.jwt" });
    expect(bad.status).toBe(401);
    expectErrorBody(bad);
    const cookie = await login(server, "carol");
    const out = await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Cookie: cookie, Origin: server.origin } });
    await out.arrayBuffer();
    const revoked = await ticket({ Cookie: cookie, Origin: server.origin });
    expect(revoked.status).toBe(401);
  });
});

describe("errors never leak internals", () => {
  test("an unknown route is a JSON 404", async () => {
    const r = await readJson(await fetch(`${server.url}/no/such/route`));
    expect(r.status).toBe(404);
    expectErrorBody(r);
  });

  test("a huge or hostile login body is a 400 or 413, not a crash", async () => {
    const r = await readJson(await postJson(server, "/auth/login", { username: "a".repeat(100_000), password: { $gt: "" } }));
    expect([400, 413]).toContain(r.status);
    expectErrorBody(r);
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
  });

  test("a login refused by the body limit (413) is still no-store, like every /auth response", async () => {
    const res = await fetch(`${server.url}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: "x".repeat(2 << 20) });
    expect(res.status).toBe(413);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("too_large");
  });
});

describe("no server faults", () => {
  test("the server logged no error, stack trace or unhandled rejection", async () => {
    await Bun.sleep(50);
    expect(server.faults()).toEqual([]);
  });
});
