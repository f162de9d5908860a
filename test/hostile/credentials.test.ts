/**
 * Credentials under attack. Brute force on one username from one address and
 * password spraying across usernames from one address both end in 429 with Retry-After, while
 * the same users from other addresses log in; tickets and first-message tokens are short-lived
 * and never logged; no cross-origin response carries Set-Cookie; security headers are on every
 * response; no route answers with credentialed CORS, preflights included.
 *
 * Addresses come from `Fly-Client-IP` (TRUST_PROXY=fly, as on Fly).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RawPeer } from "../support/raw-ws.ts";
import { TestClient, closeAll } from "../support/client.ts";
import { PASSWORDS, cookiePair, getTicket, postJson, startServer, type TestServer } from "../support/server.ts";
import { metric, rssMb } from "../support/metrics.ts";

const PER_USER_IP = 3;
const PER_IP = 5;
const TICKET_TTL_S = 1;
const TOKEN_TTL_S = 10;
const FOREIGN = "https://evil.example";

let server: TestServer;
const clients = new Set<TestClient>();
const peers = new Set<RawPeer>();

beforeAll(async () => {
  server = await startServer({
    TRUST_PROXY: "fly",
    LOGIN_MAX_FAILURES: String(PER_USER_IP),
    LOGIN_MAX_FAILURES_PER_IP: String(PER_IP),
    TICKET_TTL_S: String(TICKET_TTL_S),
    TOKEN_TTL_S: String(TOKEN_TTL_S),
    LOG_LEVEL: "debug", // the most a log could ever say
  });
}, 30_000);

afterAll(async () => {
  for (const p of peers) p.destroy();
  await closeAll(clients);
  server?.kill();
});

function attempt(path: "/auth/login" | "/auth/token", username: string, password: string, ip: string) {
  return postJson(server, path, { username, password }, { "Fly-Client-IP": ip });
}

async function loginFrom(ip: string, user: string): Promise<string> {
  const res = await attempt("/auth/login", user, PASSWORDS[user]!, ip);
  expect(res.status).toBe(200);
  return cookiePair(res.headers.get("set-cookie")!);
}

/** A bystander from its own address logs in and chats. */
async function bystanderChats(user: string, ip: string): Promise<void> {
  const cookie = await loginFrom(ip, user);
  const c = await TestClient.connect(server.wsUrl, { cookie, headers: { "Fly-Client-IP": ip } });
  clients.add(c);
  expect((await c.request({ type: "ping" })).type).toBe("pong");
}

function expectRetryAfter(res: Response): void {
  expect(res.status).toBe(429);
  const retry = Number(res.headers.get("retry-after"));
  expect(Number.isInteger(retry)).toBe(true);
  expect(retry).toBeGreaterThan(0);
  expect(retry).toBeLessThanOrEqual(300);
  expect(res.headers.get("set-cookie")).toBeNull();
}

describe("login throttling", () => {
  test(`brute force on one username from one address: ${PER_USER_IP} failures, then 429 with Retry-After even for the right password; others unaffected`, async () => {
    const attacker = "203.0.113.1";
    for (let i = 0; i < PER_USER_IP; i++) expect((await attempt("/auth/login", "alice", `guess-${i}`, attacker)).status).toBe(401);
    const throttledBefore = await metric(server, "switchboard_login_throttled_total");
    expectRetryAfter(await attempt("/auth/login", "alice", "guess-x", attacker));
    expectRetryAfter(await attempt("/auth/login", "alice", PASSWORDS.alice!, attacker));
    expectRetryAfter(await attempt("/auth/token", "alice", PASSWORDS.alice!, attacker));
    expect((await metric(server, "switchboard_login_throttled_total")) - throttledBefore).toBe(3);
    // The victim from home, and another user from the attacker's own address, are not locked out.
    await bystanderChats("alice", "198.51.100.1");
    expect((await attempt("/auth/login", "bob", PASSWORDS.bob!, attacker)).status).toBe(200);
  }, 20_000);

  test(`password spraying across usernames from one address: ${PER_IP} failures (LOGIN_MAX_FAILURES_PER_IP), then 429 for any username; other addresses unaffected`, async () => {
    const sprayer = "203.0.113.2";
    // Each username fails once only: the per-username rule never triggers.
    for (let i = 0; i < PER_IP; i++) expect((await attempt("/auth/login", `user${i}`, "Winter2026!", sprayer)).status).toBe(401);
    expectRetryAfter(await attempt("/auth/login", "user-next", "Winter2026!", sprayer));
    expectRetryAfter(await attempt("/auth/login", "carol", PASSWORDS.carol!, sprayer));
    expectRetryAfter(await attempt("/auth/token", "carol", PASSWORDS.carol!, sprayer));
    await bystanderChats("carol", "198.51.100.2");
  }, 20_000);
});

describe("tickets and first-message tokens are short-lived, and never logged", () => {
  test(`a ticket lives TICKET_TTL_S (${TICKET_TTL_S} s): unused past it → 401`, async () => {
    const cookie = await loginFrom("198.51.100.3", "bob");
    const res = await fetch(`${server.url}/auth/ticket`, { method: "POST", headers: { Cookie: cookie, Origin: server.origin } });
    const body = (await res.json()) as { ticket: string; expiresIn: number };
    expect(body.expiresIn).toBe(TICKET_TTL_S);
    await Bun.sleep(TICKET_TTL_S * 1000 + 1100);
    const late = await RawPeer.open(`${server.wsUrl}?ticket=${encodeURIComponent(body.ticket)}`);
    peers.add(late);
    expect(late.head.status).toBe(401);
  });

  test(`a first-message token expires TOKEN_TTL_S (${TOKEN_TTL_S} s) after it is issued`, async () => {
    const res = await attempt("/auth/token", "bob", PASSWORDS.bob!, "198.51.100.3");
    const body = (await res.json()) as { token: string; expiresIn: number };
    expect(body.expiresIn).toBe(TOKEN_TTL_S);
    const claims = JSON.parse(Buffer.from(body.token.split(".")[1]!, "base64url").toString("utf8"));
    expect(claims.exp - claims.iat).toBe(TOKEN_TTL_S);
  });

  test("no password, cookie, ticket or token appears in the logs, even at LOG_LEVEL=debug", async () => {
    const ip = "198.51.100.4";
    const cookie = await loginFrom(ip, "carol");
    const ticket = await getTicket(server, cookie);
    const byTicket = await TestClient.connect(`${server.wsUrl}?ticket=${ticket}`);
    clients.add(byTicket);
    const tokenRes = await attempt("/auth/token", "carol", PASSWORDS.carol!, ip);
    const { token } = (await tokenRes.json()) as { token: string };
    const byToken = new TestClient(server.wsUrl);
    clients.add(byToken);
    await byToken.waitOpen();
    byToken.send({ type: "auth", token });
    await byToken.welcome();
    // Failures are logged too: a bad ticket, a bad token, a wrong password.
    const bad = await RawPeer.open(`${server.wsUrl}?ticket=not-a-ticket-${ticket.slice(0, 4)}`);
    peers.add(bad);
    await attempt("/auth/login", "carol", "carol-wrong-password-xyz", "198.51.100.5");
    await byTicket.closeAndWait();
    await byToken.closeAndWait();
    await Bun.sleep(100);
    const logs = server.logs();
    expect(logs.length).toBeGreaterThan(0);
    for (const secret of [ticket, token, cookie.split("=")[1]!, token.split(".")[2]!, PASSWORDS.carol!, "carol-wrong-password-xyz"]) {
      expect(logs).not.toContain(secret);
    }
  });
});

describe("cookies never cross origins", () => {
  test("login from a foreign Origin → 403 and no Set-Cookie (nor for a cross-site fetch without Origin)", async () => {
    const variants: Record<string, string>[] = [{ Origin: FOREIGN }, { Origin: "null" }, { "Sec-Fetch-Site": "cross-site" }];
    for (const headers of variants) {
      const res = await postJson(server, "/auth/login", { username: "bob", password: PASSWORDS.bob }, { ...headers, "Fly-Client-IP": "198.51.100.6" });
      expect(res.status).toBe(403);
      expect(res.headers.get("set-cookie")).toBeNull();
    }
  });

  test("no /auth route sets a cookie on a response to a foreign Origin", async () => {
    const cookie = await loginFrom("198.51.100.7", "bob");
    const calls: [string, string][] = [["POST", "/auth/login"], ["POST", "/auth/logout"], ["GET", "/auth/me"], ["POST", "/auth/ticket"], ["POST", "/auth/token"]];
    for (const [method, path] of calls) {
      const res = await fetch(`${server.url}${path}`, {
        method,
        headers: { Origin: FOREIGN, Cookie: cookie, "Content-Type": "application/json", "Fly-Client-IP": "198.51.100.7" },
        body: method === "POST" ? JSON.stringify({ username: "bob", password: PASSWORDS.bob }) : undefined,
      });
      await res.arrayBuffer();
      expect([path, res.headers.get("set-cookie")]).toEqual([path, null]);
    }
    // …and the session survived the foreign logout attempt.
    const me = await fetch(`${server.url}/auth/me`, { headers: { Cookie: cookie } });
    expect(me.status).toBe(200);
  });

  test("logout from another port of the same host (same-site, so a browser sends the Lax cookie) → 403; the session lives on", async () => {
    const cookie = await loginFrom("198.51.100.11", "carol");
    const sameSite = `http://127.0.0.1:${server.port === 65535 ? 65534 : server.port + 1}`;
    const res = await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Origin: sameSite, Cookie: cookie } });
    expect(res.status).toBe(403);
    expect(res.headers.get("set-cookie")).toBeNull();
    expect((await fetch(`${server.url}/auth/me`, { headers: { Cookie: cookie } })).status).toBe(200);
    // From the server's own origin it works as before.
    const own = await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Origin: server.origin, Cookie: cookie } });
    expect(own.status).toBe(204);
    expect((await fetch(`${server.url}/auth/me`, { headers: { Cookie: cookie } })).status).toBe(401);
  });
});

describe("request bodies", () => {
  test("a body over the limit (1 MB, or MAX_PAYLOAD_BYTES + 4 KB) gets a JSON 413 without being read: concurrent 20 MB logins do not move RSS", async () => {
    const rssBefore = await rssMb(server);
    const huge = `{"username":"alice","password":"${"x".repeat(20 * 1024 * 1024)}"}`;
    const results = await Promise.all(Array.from({ length: 6 }, () => postJson(server, "/auth/login", huge, { "Fly-Client-IP": "198.51.100.12" })));
    for (const res of results) {
      expect(res.status).toBe(413);
      expect(await res.json()).toEqual({ error: { code: "too_large", message: expect.any(String) } });
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    }
    // Streamed without a Content-Length, it is cut at the limit too.
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 8; i++) controller.enqueue(new Uint8Array(512 * 1024).fill(0x20));
        controller.close();
      },
    });
    const streamed = await fetch(`${server.url}/auth/token`, { method: "POST", headers: { "Content-Type": "application/json", "Fly-Client-IP": "198.51.100.12" }, body: chunks });
    expect(streamed.status).toBe(413);
    const rssAfter = await rssMb(server);
    console.log(`bodies: 6 × 20 MB logins → 413; RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MB`);
    expect(rssAfter - rssBefore).toBeLessThan(40);
    expect((await attempt("/auth/login", "alice", PASSWORDS.alice!, "198.51.100.12")).status).toBe(200);
  });
});

describe("security headers", () => {
  test("X-Content-Type-Options and Referrer-Policy on every response; CSP on the demo page; no-store on every /auth response", async () => {
    const cookie = await loginFrom("198.51.100.8", "alice");
    const responses: [string, Response][] = [
      ["/", await fetch(`${server.url}/`)],
      ["/healthz", await fetch(`${server.url}/healthz`)],
      ["/metrics", await fetch(`${server.url}/metrics`)],
      ["404", await fetch(`${server.url}/no-such-route`)],
      ["/auth/me 200", await fetch(`${server.url}/auth/me`, { headers: { Cookie: cookie } })],
      ["/auth/me 401", await fetch(`${server.url}/auth/me`)],
      ["/auth/login 400", await postJson(server, "/auth/login", "{", { "Fly-Client-IP": "198.51.100.8" })],
      ["/auth/login 403", await postJson(server, "/auth/login", {}, { Origin: FOREIGN })],
      ["/auth/ticket 200", await fetch(`${server.url}/auth/ticket`, { method: "POST", headers: { Cookie: cookie, Origin: server.origin } })],
      ["/auth/token 401", await attempt("/auth/token", "alice", "nope", "198.51.100.9")],
    ];
    for (const [name, res] of responses) {
      await res.arrayBuffer();
      expect([name, res.headers.get("x-content-type-options")]).toEqual([name, "nosniff"]);
      expect([name, res.headers.get("referrer-policy")]).toEqual([name, "no-referrer"]);
      if (name.startsWith("/auth")) expect([name, res.headers.get("cache-control")]).toEqual([name, "no-store"]);
    }
    const csp = responses[0]![1].headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-inline");
    // A refused upgrade is an HTTP response too.
    const refused = await RawPeer.open(server.wsUrl, { Origin: FOREIGN });
    peers.add(refused);
    expect(refused.head.status).toBe(403);
    expect(refused.head.headers["x-content-type-options"]).toBe("nosniff");
  });
});

describe("no credentialed CORS", () => {
  test("no route grants a foreign Origin read access with credentials, preflights included", async () => {
    const cookie = await loginFrom("198.51.100.10", "alice");
    const paths = ["/auth/login", "/auth/me", "/auth/ticket", "/auth/token", "/auth/logout", "/api/publish", "/api/presence/room:x", "/metrics", "/"];
    for (const path of paths) {
      const preflight = await fetch(`${server.url}${path}`, {
        method: "OPTIONS",
        headers: { Origin: FOREIGN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, authorization" },
      });
      await preflight.arrayBuffer();
      const get = await fetch(`${server.url}${path}`, { headers: { Origin: FOREIGN, Cookie: cookie } });
      await get.arrayBuffer();
      for (const res of [preflight, get]) {
        expect([path, res.headers.get("access-control-allow-credentials")]).toEqual([path, null]);
        const acao = res.headers.get("access-control-allow-origin");
        expect([path, acao === FOREIGN || acao === "*" || acao === "null"]).toEqual([path, false]);
        expect([path, res.headers.get("access-control-allow-methods")]).toEqual([path, null]);
      }
    }
  });
});
