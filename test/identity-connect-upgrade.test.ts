/**
 * SPEC §4 AUTH_CONNECT_URL at the upgrade, against a real server process and a real app backend:
 * the app decides upgrades that carry only its opaque cookie (200 → socket, 401/403 → 401, slow,
 * down or 5xx → 503), sees nothing of the request but its Cookie header, is asked once per cookie
 * text within AUTH_CONNECT_CACHE_S, and an answer with expiresIn expires the socket.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { upgradeStatus } from "./support/raw-ws.ts";
import { TEST_API_KEY, killAllServers, login, postJson, startServer, type TestServer } from "./support/server.ts";
import { serveAppBackend, type AppBackend, type ConnectBehaviour } from "./support/app-backend.ts";

const SECRET = "webhook-secret-for-connect-0123456789abcdef";
let backend: AppBackend;
let server: TestServer;
const clients: TestClient[] = [];

const ANSWERS: Record<string, ConnectBehaviour> = {
  "sess=ana": { kind: "ok", body: { user: { id: "ana@example.com", name: "Ana" }, caps: { "room:*": ["subscribe", "publish", "presence"] } } },
  "sess=short": { kind: "ok", body: { user: { id: "short-lived" }, expiresIn: 6 } },
  "sess=denied": { kind: "status", status: 401 },
  "sess=forbidden": { kind: "status", status: 403 },
  "sess=broken": { kind: "status", status: 500 },
  "sess=slow": { kind: "slow", ms: 3000, body: { user: { id: "slow" } } },
  "sess=garbage": { kind: "raw", text: '{"user":"nobody"}' },
  "sess=revoked": { kind: "ok", body: { user: { id: "revoked-later" }, expiresIn: 3 } },
};

/** Cookies read by name, as an app does: `app=<session>` with any other cookies beside it (analytics, CSRF). */
function byAppSession(cookie: string): ConnectBehaviour | undefined {
  const session = /(?:^|; )app=([^;]+)/.exec(cookie)?.[1];
  if (session === undefined) return undefined;
  const user = { id: "leo", name: "Leo" };
  return { kind: "ok", body: session.startsWith("named-") ? { user, session } : { user } };
}

beforeAll(async () => {
  backend = serveAppBackend(SECRET, (cookie) => ANSWERS[cookie] ?? byAppSession(cookie) ?? { kind: "status", status: 401 });
  server = await startServer({
    AUTH_CONNECT_URL: backend.url,
    WEBHOOK_SECRET: SECRET,
    AUTH_CONNECT_TIMEOUT_MS: "500",
    AUTH_CONNECT_CACHE_S: "10",
    LOG_LEVEL: "debug",
  });
});

afterAll(async () => {
  await closeAll(clients);
  await server?.stop();
  backend?.stop();
  killAllServers();
});

describe("§4 AUTH_CONNECT_URL decides upgrades with opaque cookies", () => {
  test("200 → the app's user, welcomed at once; the app saw only the Cookie header, signed, body {}", async () => {
    const c = await TestClient.connect(server.wsUrl, { cookie: "sess=ana", headers: { Authorization: "Bearer not-for-the-app", "X-Private": "nope" } });
    clients.push(c);
    expect(c.frames[0]!.user).toEqual({ id: "ana@example.com", name: "Ana" });
    const seen = backend.seen.at(-1)!;
    expect(seen.signed).toBe(true);
    expect(seen.body).toBe("{}");
    expect(seen.headers.cookie).toBe("sess=ana");
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers["x-private"]).toBeUndefined();
    expect(seen.headers["sec-websocket-key"]).toBeUndefined();
    expect(seen.headers.origin).toBeUndefined();
  });

  test("401 and 403 → 401; 5xx, a bad body, silence past AUTH_CONNECT_TIMEOUT_MS → 503", async () => {
    expect((await upgradeStatus(server.wsUrl, { Cookie: "sess=denied" })).status).toBe(401);
    expect((await upgradeStatus(server.wsUrl, { Cookie: "sess=forbidden" })).status).toBe(401);
    const broken = await upgradeStatus(server.wsUrl, { Cookie: "sess=broken" });
    expect(broken.status).toBe(503);
    expect(JSON.parse(broken.body).error.code).toBe("unavailable");
    expect((await upgradeStatus(server.wsUrl, { Cookie: "sess=garbage" })).status).toBe(503);
    const started = Date.now();
    expect((await upgradeStatus(server.wsUrl, { Cookie: "sess=slow" }, 5000)).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test("answers are cached per cookie text: a second upgrade with the same cookie asks nothing", async () => {
    const before = backend.seen.length;
    const a = await TestClient.connect(server.wsUrl, { cookie: "sess=ana" });
    clients.push(a);
    expect(backend.seen.length).toBe(before);
    const refusals = await Promise.all([1, 2, 3].map(() => upgradeStatus(server.wsUrl, { Cookie: "sess=denied" })));
    expect(refusals.map((r) => r.status)).toEqual([401, 401, 401]);
    expect(backend.seen.length).toBeGreaterThan(before);
  });

  test("an oversized Cookie header → 401 without asking the app", async () => {
    const before = backend.seen.length;
    const res = await upgradeStatus(server.wsUrl, { Cookie: `sess=${"x".repeat(9000)}` });
    expect(res.status).toBe(401);
    expect(backend.seen.length).toBe(before);
  });

  test("without any cookie the app is not asked: first-message auth as before", async () => {
    const before = backend.seen.length;
    const c = new TestClient(server.wsUrl);
    clients.push(c);
    await c.waitOpen();
    c.send({ type: "auth", token: "not-a-token" });
    expect((await c.waitClose()).code).toBe(4001);
    expect(backend.seen.length).toBe(before);
  });

  test("the built-in session cookie comes before the app: no request for it", async () => {
    const before = backend.seen.length;
    const c = await TestClient.connect(server.wsUrl, { cookie: await login(server, "alice") });
    clients.push(c);
    expect(c.frames[0]!.user.id).toBe("alice");
    expect(backend.seen.length).toBe(before);
  });

  test("a revoke refuses the app's answer given before it (cached); once the cache ends the app is asked again and decides", async () => {
    const asked = () => backend.seen.filter((r) => r.headers.cookie === "sess=revoked").length;
    const first = Date.now();
    expect((await upgradeStatus(server.wsUrl, { Cookie: "sess=revoked" })).status).toBe(101);
    await Bun.sleep(1000 - (Date.now() % 1000) + 50); // the revoke comes in a later second than the answer
    const revoke = await postJson(server, "/api/disconnect", { user: "revoked-later", revoke: true }, { Authorization: `Bearer ${TEST_API_KEY}` });
    expect(revoke.status).toBe(200);
    await revoke.arrayBuffer();
    expect((await upgradeStatus(server.wsUrl, { Cookie: "sess=revoked" })).status).toBe(401);
    expect(asked()).toBe(1);
    await Bun.sleep(Math.max(0, first + 4000 - Date.now())); // past the answer's expiresIn (3 s), and the revoke's second
    expect((await upgradeStatus(server.wsUrl, { Cookie: "sess=revoked" })).status).toBe(101);
    expect(asked()).toBe(2);
  }, 15_000);

  test("expiresIn expires the socket: `expiring` first, then 4001 within 2 s of the expiry", async () => {
    const c = await TestClient.connect(server.wsUrl, { cookie: "sess=short" });
    clients.push(c);
    const expiring = await c.nextType("expiring", 4000);
    const expiresAt = expiring.expiresAt as number;
    expect(expiresAt - Date.now() / 1000).toBeWithin(3, 7);
    const closed = await c.waitClose(10_000);
    expect(closed.code).toBe(4001);
    const lateness = Date.now() - expiresAt * 1000;
    expect(lateness).toBeGreaterThan(-1000);
    expect(lateness).toBeLessThan(2000);
  });
});

describe("§4 AUTH_CONNECT_URL and POST /auth/logout", () => {
  const logout = (cookie: string) => fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Cookie: cookie, Origin: server.origin } });

  test("an answer naming the app's session (`session`): logout revokes that session, whatever other cookie changes beside it; the user's other sessions stay", async () => {
    const c = await TestClient.connect(server.wsUrl, { cookie: "app=named-1; _ga=GA1.1" });
    clients.push(c);
    const other = await TestClient.connect(server.wsUrl, { cookie: "app=named-2" });
    clients.push(other);
    expect((await logout("app=named-1; _ga=GA1.1")).status).toBe(204);
    expect((await c.waitClose()).code).toBe(4001);
    for (const cookie of ["app=named-1; _ga=GA1.2", "csrftoken=x; app=named-1", "app=named-1"]) {
      expect({ cookie, status: (await upgradeStatus(server.wsUrl, { Cookie: cookie })).status }).toEqual({ cookie, status: 401 });
    }
    expect(other.close).toBeNull();
    const again = await TestClient.connect(server.wsUrl, { cookie: "app=named-2; _ga=GA1.3" });
    clients.push(again);
    expect(again.frames[0]!.user).toEqual({ id: "leo", name: "Leo" });
  });

  test("an answer without `session`: logout revokes the Cookie text it was sent (documented: another cookie changing is another session)", async () => {
    const c = await TestClient.connect(server.wsUrl, { cookie: "app=plain-1; _ga=GA1.1" });
    clients.push(c);
    expect((await logout("app=plain-1; _ga=GA1.1")).status).toBe(204);
    expect((await c.waitClose()).code).toBe(4001);
    expect((await upgradeStatus(server.wsUrl, { Cookie: "app=plain-1; _ga=GA1.1" })).status).toBe(401);
    expect((await upgradeStatus(server.wsUrl, { Cookie: "app=plain-1; _ga=GA1.2" })).status).toBe(101);
  });
});

describe("§4 the app's outage and its answers stay out of the logs", () => {
  test("a backend that is down → 503; no cookie or answer in the logs; the server keeps serving", async () => {
    backend.stop();
    expect((await upgradeStatus(server.wsUrl, { Cookie: "sess=never-seen" })).status).toBe(503);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const logs = server.logs();
    expect(logs).toContain("AUTH_CONNECT_URL");
    for (const leak of ["sess=", "\"Ana\"", "nobody", "not-for-the-app"]) expect(logs).not.toContain(leak);
    expect(server.faults()).toEqual([]);
  });
});

describe("§4 + §8: the app's connect calls are bounded per address", () => {
  test("at most MAX_CONNECTIONS_PER_IP calls in flight per address, at the upgrade and on /auth and /api: past it 429, the app is not asked", async () => {
    // Any cookie text is a new question for the app: without a bound, one address with junk
    // cookies kept hundreds of signed calls in flight and everyone else's timed out (503).
    let inFlight = 0;
    let peak = 0;
    const slowApp = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch() {
        peak = Math.max(peak, ++inFlight);
        await Bun.sleep(600);
        inFlight--;
        return Response.json({ error: "no" }, { status: 401 });
      },
    });
    const s = await startServer({ AUTH_CONNECT_URL: `http://127.0.0.1:${slowApp.port}/connect`, WEBHOOK_SECRET: SECRET, MAX_CONNECTIONS_PER_IP: "5" });
    try {
      const upgrades = await Promise.all(Array.from({ length: 30 }, (_, i) => upgradeStatus(s.wsUrl, { Cookie: `junk=${i}` }, 5000).then((r) => r.status)));
      expect(peak).toBeLessThanOrEqual(5);
      expect(upgrades.filter((st) => st === 401).length).toBeLessThanOrEqual(5);
      expect(upgrades.filter((st) => st === 429).length).toBeGreaterThanOrEqual(25);
      expect(upgrades.every((st) => st === 401 || st === 429)).toBe(true);

      for (const [method, path] of [["GET", "/auth/me"], ["POST", "/auth/ticket"], ["GET", "/api/presence/room:a"]]) {
        peak = 0;
        const answers = await Promise.all(
          Array.from({ length: 20 }, (_, i) => fetch(`${s.url}${path}`, { method, headers: { Cookie: `junk=${path}${i}`, Origin: s.origin } })),
        );
        const statuses = answers.map((r) => r.status);
        expect({ path, peak: Math.min(peak, 5) }).toEqual({ path, peak }); // never more than 5
        expect({ path, limited: statuses.filter((st) => st === 429).length >= 15 }).toEqual({ path, limited: true });
        const limited = answers.find((r) => r.status === 429)!;
        expect(limited.headers.get("retry-after")).not.toBeNull();
        expect((await limited.json()).error.code).toBe("rate_limited");
      }
      // Once they are answered, the address may ask again.
      expect((await upgradeStatus(s.wsUrl, { Cookie: "junk=again" }, 5000)).status).toBe(401);
      expect(s.faults()).toEqual([]);
    } finally {
      s.kill();
      slowApp.stop(true);
    }
  });
});
