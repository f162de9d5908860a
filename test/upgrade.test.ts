/**
 * SPEC §3 "The WebSocket endpoint": the checks before the upgrade, and the three ways to
 * authenticate a socket — cookie, single-use ticket, first-message token.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { Op, RawPeer, upgradeStatus } from "./support/raw-ws.ts";
import { getTicket, getToken, login, session, startServer, type TestServer, killAllServers } from "./support/server.ts";

const ALLOWED = "http://app.example.test";
const AUTH_TIMEOUT_MS = 400;

let server: TestServer;
let strict: TestServer; // TICKET_TTL_S=1, MAX_CONNECTIONS_PER_IP=1, no TRUST_PROXY
let proxied: TestServer; // TRUST_PROXY=fly, MAX_CONNECTIONS_PER_IP=1
const clients = new Set<TestClient>();

function open(url: string, opts: ConstructorParameters<typeof TestClient>[1] = {}) {
  const c = new TestClient(url, opts);
  clients.add(c);
  return c;
}

beforeAll(async () => {
  [server, strict, proxied] = await Promise.all([
    startServer({ ALLOWED_ORIGINS: `${ALLOWED},http://other.example.test:8080`, AUTH_TIMEOUT_MS: String(AUTH_TIMEOUT_MS) }),
    startServer({ TICKET_TTL_S: "1", MAX_CONNECTIONS_PER_IP: "1" }),
    startServer({ TRUST_PROXY: "fly", MAX_CONNECTIONS_PER_IP: "1" }),
  ]);
}, 30_000);
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  strict?.kill();
  proxied?.kill();
  killAllServers();
});

/** A refused upgrade: the raw status is `status`, and a WebSocket client never opens (1006). */
async function expectRefused(status: number, headers: Record<string, string>, query = "") {
  const raw = await upgradeStatus(server.wsUrl + query, headers);
  expect(raw.status).toBe(status);
  expect(JSON.parse(raw.body)).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
  const { Cookie: cookie, Origin: origin, ...rest } = headers;
  const c = open(server.wsUrl + query, { cookie, origin, headers: rest });
  const closed = await c.waitClose();
  expect(c.opened).toBe(false);
  expect(c.frames).toEqual([]);
  expect(closed.code).toBe(1006);
}

describe("cookie authentication", () => {
  test("a session cookie from the server's own origin → welcome with the user", async () => {
    const s = await session(server, "alice");
    const c = open(server.wsUrl, { cookie: s.cookie, origin: server.origin });
    const welcome = await c.welcome();
    expect(welcome.user).toEqual(s.user);
  });

  test("no Origin at all (a non-browser client) is allowed", async () => {
    const s = await session(server, "alice");
    const c = open(server.wsUrl, { cookie: s.cookie });
    expect((await c.welcome()).user.name).toBe("alice");
  });

  test("an exact ALLOWED_ORIGINS entry is allowed", async () => {
    const s = await session(server, "alice");
    for (const origin of [ALLOWED, "http://other.example.test:8080"]) {
      const c = open(server.wsUrl, { cookie: s.cookie, origin });
      expect((await c.welcome()).user.name).toBe("alice");
    }
  });

  test("a forged cookie → 401, no socket", async () => {
    const s = await session(server, "alice");
    const [name] = s.cookie.split("=");
    await expectRefused(401, { Cookie: `${name}=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.AAAA`, Origin: server.origin });
  });

  test("a revoked session's cookie → 401", async () => {
    const cookie = await login(server, "bob");
    const res = await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Cookie: cookie, Origin: server.origin } });
    await res.arrayBuffer();
    expect(res.status).toBe(204);
    await expectRefused(401, { Cookie: cookie, Origin: server.origin });
  });

  test("logout closes that session's open sockets (cookie or ticket) with 4001 and leaves the user's other sessions open", async () => {
    const doomed = await login(server, "carol");
    const kept = await login(server, "carol");
    const a = open(server.wsUrl, { cookie: doomed, origin: server.origin });
    const viaTicket = open(`${server.wsUrl}?ticket=${encodeURIComponent(await getTicket(server, doomed))}`);
    const b = open(server.wsUrl, { cookie: kept, origin: server.origin });
    await Promise.all([a.welcome(), viaTicket.welcome(), b.welcome()]);
    const res = await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Cookie: doomed, Origin: server.origin } });
    await res.arrayBuffer();
    expect((await a.waitClose()).code).toBe(4001);
    expect((await viaTicket.waitClose()).code).toBe(4001);
    expect((await b.request({ type: "ping" })).type).toBe("pong");
  });
});

describe("Origin check: present and not allowed → 403 and no socket, even with a valid cookie", () => {
  const cases: [string, (port: number) => string][] = [
    ["null", () => "null"],
    ["a look-alike suffix of the own origin", (p) => `http://127.0.0.1:${p}.evil.com`],
    ["the own origin with a longer port", (p) => `http://127.0.0.1:${p}0`],
    ["another port of the same host", (p) => `http://127.0.0.1:${p === 65535 ? p - 1 : p + 1}`],
    ["another scheme of the same host", (p) => `https://127.0.0.1:${p}`],
    ["another name for the same host", (p) => `http://localhost:${p}`],
    ["an allowed origin with a suffix", () => `${ALLOWED}.evil.com`],
    ["a prefix of an allowed origin", () => ALLOWED.slice(0, -1)],
    ["a subdomain of an allowed origin", () => ALLOWED.replace("://", "://evil.")],
    ["an allowed origin with a trailing slash", () => `${ALLOWED}/`],
    ["an allowed origin with another port", () => "http://other.example.test:8081"],
    ["a foreign site", () => "https://evil.example"],
  ];
  for (const [name, origin] of cases) {
    test(name, async () => {
      const s = await session(server, "alice");
      await expectRefused(403, { Cookie: s.cookie, Origin: origin(server.port) });
    });
  }

  test("a ticket does not bypass the Origin check", async () => {
    const s = await session(server, "alice");
    const t = await getTicket(server, s.cookie);
    const raw = await upgradeStatus(`${server.wsUrl}?ticket=${encodeURIComponent(t)}`, { Origin: "https://evil.example" });
    expect(raw.status).toBe(403);
  });
});

describe("ticket authentication", () => {
  test("a fresh ticket without a cookie → welcome as the ticket's user", async () => {
    const s = await session(server, "bob");
    const t = await getTicket(server, s.cookie);
    const c = open(`${server.wsUrl}?ticket=${encodeURIComponent(t)}`, { origin: server.origin });
    expect((await c.welcome()).user).toEqual(s.user);
  });

  test("a ticket is single use: the replay → 401", async () => {
    const s = await session(server, "bob");
    const t = await getTicket(server, s.cookie);
    const first = open(`${server.wsUrl}?ticket=${encodeURIComponent(t)}`);
    await first.welcome();
    await expectRefused(401, {}, `?ticket=${encodeURIComponent(t)}`);
  });

  test("an unknown ticket → 401", async () => {
    await expectRefused(401, { Origin: server.origin }, "?ticket=not-a-real-ticket-0123456789");
  });

  test("an expired ticket → 401 (TICKET_TTL_S=1)", async () => {
    const cookie = await login(strict, "alice");
    const fresh = await getTicket(strict, cookie);
    const stale = await getTicket(strict, cookie);
    expect((await upgradeStatus(`${strict.wsUrl}?ticket=${encodeURIComponent(fresh)}`)).status).toBe(101);
    await Bun.sleep(2100);
    expect((await upgradeStatus(`${strict.wsUrl}?ticket=${encodeURIComponent(stale)}`)).status).toBe(401);
  }, 30_000);
});

describe("first-message authentication", () => {
  test('{"type":"auth","token"} as the first frame → welcome', async () => {
    const s = await session(server, "carol");
    const token = await getToken(server, "carol");
    const c = open(server.wsUrl);
    await c.waitOpen();
    c.send({ type: "auth", token });
    expect((await c.welcome()).user).toEqual(s.user);
    expect((await c.request({ type: "ping" })).type).toBe("pong");
  });

  test("a bad token → close 4001", async () => {
    const c = open(server.wsUrl);
    await c.waitOpen();
    c.send({ type: "auth", token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYXJvbCJ9.forged" });
    expect((await c.waitClose()).code).toBe(4001);
    expect(c.ofType("welcome")).toEqual([]);
  });

  test("no frame within AUTH_TIMEOUT_MS → close 4002", async () => {
    const started = Date.now();
    const c = open(server.wsUrl);
    await c.waitOpen();
    const closed = await c.waitClose(AUTH_TIMEOUT_MS + 3000);
    const elapsed = Date.now() - started;
    expect(closed.code).toBe(4002);
    expect(elapsed).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(AUTH_TIMEOUT_MS + 2000);
  });

  test("anything else first → close 1008, and it is not acted on", async () => {
    const c = open(server.wsUrl);
    await c.waitOpen();
    c.send({ type: "subscribe", topic: "room:lobby", ref: 1 });
    expect((await c.waitClose()).code).toBe(1008);
    expect(c.frames.filter((f) => f.type === "ack")).toEqual([]);
  });

  test("garbage first → close 1008", async () => {
    const c = open(server.wsUrl);
    await c.waitOpen();
    c.send("hello?");
    expect((await c.waitClose()).code).toBe(1008);
  });
});

describe("after authentication", () => {
  test("an auth frame after welcome → error bad_request with the ref; the socket stays", async () => {
    const s = await session(server, "alice");
    const token = await getToken(server, "alice");
    const c = open(server.wsUrl, { cookie: s.cookie });
    await c.welcome();
    const reply = await c.request({ type: "auth", token, ref: 5 });
    // structuredClone: Bun 1.4.5's toMatchObject overwrites the received object's fields with asymmetric matchers.
    expect(structuredClone(reply)).toMatchObject({ type: "error", ref: 5, code: "bad_request", message: expect.any(String) });
    expect((await c.request({ type: "ping", ref: 6 })).type).toBe("pong");
    expect(c.isOpen).toBe(true);
  });

  test("a binary frame → close 1003", async () => {
    const s = await session(server, "alice");
    const c = open(server.wsUrl, { cookie: s.cookie });
    await c.welcome();
    c.sendRaw(new Uint8Array([1, 2, 3]));
    expect((await c.waitClose()).code).toBe(1003);
  });

  test("a binary first frame (before auth) closes with 1003, as a binary frame after welcome does", async () => {
    const first = await RawPeer.open(server.wsUrl);
    first.sendFrame({ opcode: Op.binary, payload: new TextEncoder().encode('{"type":"auth","token":"x"}') });
    expect((await first.closed()).code).toBe(1003);
    const later = await RawPeer.open(server.wsUrl, { Cookie: (await session(server, "carol")).cookie });
    await later.waitFrame((f) => f.opcode === Op.text);
    later.sendFrame({ opcode: Op.binary, payload: new Uint8Array([1]) });
    expect((await later.closed()).code).toBe(1003);
  });
});

describe("framing errors from the WebSocket engine", () => {
  test("a text frame that is not valid UTF-8 → close 1007", async () => {
    const s = await session(server, "alice");
    const raw = await RawPeer.open(server.wsUrl, { Cookie: s.cookie });
    try {
      expect(raw.head.status).toBe(101);
      await raw.waitJson((f) => f.type === "welcome");
      raw.sendFrame({ opcode: Op.text, payload: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) });
      await raw.until(() => raw.closeFrame ?? undefined, 3000, "a close frame");
      expect(raw.closeFrame!.code).toBe(1007);
    } finally {
      raw.destroy();
    }
  });
});

describe("behind Fly's proxy (TRUST_PROXY=fly)", () => {
  const https = { "X-Forwarded-Proto": "https" };

  async function loginVia(server: TestServer, headers: Record<string, string>) {
    const res = await fetch(`${server.url}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify({ username: "alice", password: "alice-password" }),
    });
    await res.arrayBuffer();
    expect(res.status).toBe(200);
    return res.headers.get("set-cookie") ?? "";
  }

  test("served over https (X-Forwarded-Proto): the cookie is Secure with the __Host- prefix, Path=/ and no Domain", async () => {
    const setCookie = await loginVia(proxied, https);
    expect(setCookie.startsWith("__Host-")).toBe(true);
    const attrs = setCookie.split(";").map((a) => a.trim().toLowerCase());
    expect(attrs).toContain("secure");
    expect(attrs).toContain("httponly");
    expect(attrs).toContain("samesite=lax");
    expect(attrs).toContain("path=/");
    expect(attrs.some((a) => a.startsWith("domain="))).toBe(false);
  });

  test("without TRUST_PROXY, X-Forwarded-Proto is ignored: no Secure, no __Host-", async () => {
    const setCookie = await loginVia(server, https);
    expect(setCookie.startsWith("__Host-")).toBe(false);
    expect(setCookie.toLowerCase()).not.toContain("secure");
  });

  test("the own origin takes its scheme from X-Forwarded-Proto: https://host is allowed, http://host is not", async () => {
    const cookie = (await loginVia(proxied, https)).split(";")[0]!;
    const host = `127.0.0.1:${proxied.port}`;
    const ok = await upgradeStatus(proxied.wsUrl, { ...https, Cookie: cookie, Origin: `https://${host}`, "Fly-Client-IP": "203.0.113.1" });
    expect(ok.status).toBe(101);
    const refused = await upgradeStatus(proxied.wsUrl, { ...https, Cookie: cookie, Origin: `http://${host}`, "Fly-Client-IP": "203.0.113.2" });
    expect(refused.status).toBe(403);
  });

  test("a Host that spells out the default port (app.example.com:443, as some proxies forward it) is still the own origin; another port is not", async () => {
    const cookie = (await loginVia(proxied, https)).split(";")[0]!;
    const headers = { ...https, Cookie: cookie, Host: "app.example.test:443" };
    const ok = await upgradeStatus(proxied.wsUrl, { ...headers, Origin: "https://app.example.test", "Fly-Client-IP": "203.0.113.3" });
    expect(ok.status).toBe(101);
    const otherPort = await upgradeStatus(proxied.wsUrl, { ...headers, Host: "app.example.test:4443", Origin: "https://app.example.test", "Fly-Client-IP": "203.0.113.4" });
    expect(otherPort.status).toBe(403);
    const httpDefault = await upgradeStatus(proxied.wsUrl, { ...headers, Host: "app.example.test:80", Origin: "https://app.example.test", "Fly-Client-IP": "203.0.113.5" });
    expect(httpDefault.status).toBe(403); // :80 is not https's default port
    const ticket = await fetch(`${proxied.url}/auth/ticket`, { method: "POST", headers: { ...headers, Origin: "https://app.example.test", "Fly-Client-IP": "203.0.113.6" } });
    await ticket.arrayBuffer();
    expect(ticket.status).toBe(200);
  });

  test("the client IP for MAX_CONNECTIONS_PER_IP comes from Fly-Client-IP", async () => {
    const s = await session(proxied, "bob");
    const a = open(proxied.wsUrl, { cookie: s.cookie, headers: { "Fly-Client-IP": "198.51.100.7" } });
    await a.welcome();
    const sameIp = await upgradeStatus(proxied.wsUrl, { Cookie: s.cookie, "Fly-Client-IP": "198.51.100.7" });
    expect(sameIp.status).toBe(429);
    const b = open(proxied.wsUrl, { cookie: s.cookie, headers: { "Fly-Client-IP": "198.51.100.8" } });
    await b.welcome();
  });

  test("an IPv6 client counts by its /64 for MAX_CONNECTIONS_PER_IP: another address of the same /64 is refused, another /64 is not", async () => {
    const { cookie } = await session(proxied, "carol");
    const from = (ip: string) => ({ Cookie: cookie, "Fly-Client-IP": ip });
    const first = open(proxied.wsUrl, { cookie, headers: { "Fly-Client-IP": "2001:db8:b:1::1" } });
    await first.welcome();
    expect((await upgradeStatus(proxied.wsUrl, from("2001:db8:b:1:8000::2"))).status).toBe(429);
    expect((await upgradeStatus(proxied.wsUrl, from("2001:db8:b:2::1"))).status).toBe(101);
    await first.closeAndWait();
    expect((await upgradeStatus(proxied.wsUrl, from("2001:db8:b:1::3"))).status).toBe(101); // released on close
  });

  test("without TRUST_PROXY a spoofed Fly-Client-IP does not escape the per-IP cap", async () => {
    const s = await session(strict, "carol");
    const first = open(strict.wsUrl, { cookie: s.cookie, headers: { "Fly-Client-IP": "198.51.100.9" } });
    await first.welcome();
    const spoofed = await upgradeStatus(strict.wsUrl, { Cookie: s.cookie, "Fly-Client-IP": "198.51.100.10" });
    expect(spoofed.status).toBe(429);
  });
});

describe("no server faults", () => {
  test("the server logged no error, stack trace or unhandled rejection", async () => {
    await Bun.sleep(50);
    expect(server.faults()).toEqual([]);
    expect(proxied.faults()).toEqual([]);
  });
});
