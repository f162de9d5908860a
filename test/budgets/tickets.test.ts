/**
 * SPEC §8: TICKETS_PER_MIN per session or token on POST /auth/ticket (429 with Retry-After), and a
 * ticket socket is revoked with the credential that minted it — a cookie session, or a token,
 * whose session id can be revoked like a cookie session's (POST /auth/logout with the bearer token).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "../support/client.ts";
import { getToken, killAllServers, loginSession, startServer, type TestServer } from "../support/server.ts";
import { serveAppBackend } from "../support/app-backend.ts";

let server: TestServer;
const clients = new Set<TestClient>();
beforeAll(async () => {
  server = await startServer({ TICKETS_PER_MIN: "5" });
});
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  killAllServers();
});

function askTicket(headers: Record<string, string>) {
  return fetch(`${server.url}/auth/ticket`, { method: "POST", headers: { Origin: server.origin, ...headers } }).then(async (res) => ({
    status: res.status,
    retryAfter: res.headers.get("retry-after"),
    body: (await res.json()) as { ticket?: string; error?: { code: string } },
  }));
}

describe("TICKETS_PER_MIN", () => {
  test("the sixth ticket of a session in a minute is 429 with Retry-After; another session and a token have their own", async () => {
    const first = (await loginSession(server, "alice")).cookie;
    const second = (await loginSession(server, "alice")).cookie;
    const answers = await Promise.all(Array.from({ length: 8 }, () => askTicket({ Cookie: first })));
    expect(answers.filter((a) => a.status === 200).length).toBe(5);
    for (const a of answers.filter((a) => a.status !== 200)) {
      expect(a.status).toBe(429);
      expect(a.body.error?.code).toBe("rate_limited");
      const retry = Number(a.retryAfter);
      expect(retry).toBeGreaterThan(0);
      expect(retry).toBeLessThanOrEqual(60);
    }
    expect((await askTicket({ Cookie: second })).status).toBe(200);
    const token = await getToken(server, "alice");
    const byToken = await Promise.all(Array.from({ length: 6 }, () => askTicket({ Authorization: `Bearer ${token}` })));
    expect(byToken.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 200, 429]);
  });
});

describe("TICKETS_PER_MIN with AUTH_CONNECT_URL", () => {
  test("an app-confirmed cookie counts per user: junk appended to the Cookie header is not a new session", async () => {
    // The app reads its own cookie and ignores the rest; every other Cookie text is a new cache
    // entry and was a new budget, so one signed-in user minted tickets without limit.
    const secret = "webhook-secret-for-tickets-0123456789abcdef";
    const app = serveAppBackend(secret, (cookie) => (cookie.includes("sess=ok") ? { kind: "ok", body: { user: { id: "mallory" } } } : { kind: "status", status: 401 }));
    const s = await startServer({ TICKETS_PER_MIN: "5", AUTH_CONNECT_URL: app.url, WEBHOOK_SECRET: secret });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) {
        const res = await fetch(`${s.url}/auth/ticket`, { method: "POST", headers: { Origin: s.origin, Cookie: `sess=ok; junk=${i}` } });
        statuses.push(res.status);
        await res.arrayBuffer();
      }
      expect(statuses.filter((st) => st === 200).length).toBe(5);
      expect(statuses.slice(5).every((st) => st === 429)).toBe(true);
    } finally {
      s.kill();
      app.stop();
    }
  });
});

describe("a ticket socket goes with the credential that minted it", () => {
  test("logout of the cookie session closes the ticket's socket with 4001", async () => {
    const { cookie } = await loginSession(server, "bob");
    const { body } = await askTicket({ Cookie: cookie });
    const ws = await TestClient.connect(`${server.wsUrl}?ticket=${body.ticket}`);
    clients.add(ws);
    const out = await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Cookie: cookie, Origin: server.origin } });
    expect(out.status).toBe(204);
    expect((await ws.waitClose()).code).toBe(4001);
  });

  test("a token's session is revoked with POST /auth/logout and the bearer token: its ticket socket, its own socket and the token go", async () => {
    const token = await getToken(server, "carol");
    const { body } = await askTicket({ Authorization: `Bearer ${token}` });
    const byTicket = await TestClient.connect(`${server.wsUrl}?ticket=${body.ticket}`);
    const byToken = new TestClient(server.wsUrl);
    clients.add(byTicket).add(byToken);
    await byToken.waitOpen();
    byToken.send({ type: "auth", token });
    await byToken.welcome();
    const out = await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toBeNull();
    expect((await byTicket.waitClose()).code).toBe(4001);
    expect((await byToken.waitClose()).code).toBe(4001);
    expect((await askTicket({ Authorization: `Bearer ${token}` })).status).toBe(401);
    const again = new TestClient(server.wsUrl);
    clients.add(again);
    await again.waitOpen();
    again.send({ type: "auth", token });
    expect((await again.waitClose()).code).toBe(4001);
  });
});
