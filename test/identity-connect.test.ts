/**
 * SPEC §4 AUTH_CONNECT_URL, at the client (src/auth/connect.ts) against a real app backend: what
 * is sent (the Cookie header, a valid signature over `{}`), how each answer maps (identity,
 * refusal, unavailable), the cache per exact cookie text bounded by `expiresIn`, and one request
 * for identical lookups in flight. Never a cookie or an answer in the logs.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { ConnectClient, MAX_COOKIE_CHARS } from "../src/auth/connect.ts";
import { SwitchboardError } from "../src/protocol/codes.ts";
import type { Logger } from "../src/log.ts";
import { serveAppBackend, type AppBackend, type ConnectBehaviour } from "./support/app-backend.ts";

const SECRET = "webhook-secret-0123456789abcdef-0123456789";
const backends: AppBackend[] = [];
afterAll(() => backends.forEach((b) => b.stop()));

function setup(answer: (cookie: string) => ConnectBehaviour, overrides: { cacheS?: number; timeoutMs?: number } = {}) {
  const backend = serveAppBackend(SECRET, answer);
  backends.push(backend);
  const lines: string[] = [];
  const log: Logger = {
    debug: (m, f) => lines.push(JSON.stringify({ m, ...f })),
    info: (m, f) => lines.push(JSON.stringify({ m, ...f })),
    warn: (m, f) => lines.push(JSON.stringify({ m, ...f })),
    error: (m, f) => lines.push(JSON.stringify({ m, ...f })),
    child: () => log,
  };
  let clock = Date.now();
  const client = ConnectClient.from(
    { authConnectUrl: backend.url, authConnectTimeoutMs: overrides.timeoutMs ?? 2000, authConnectCacheS: overrides.cacheS ?? 10, webhookSecret: SECRET, maxConnectionsPerIp: 100 },
    { log, now: () => clock },
  )!;
  return { backend, client, lines, advance: (ms: number) => (clock += ms) };
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SwitchboardError) return error.code;
    throw error;
  }
  return "resolved";
}

const USER = { user: { id: "42", name: "Ana" }, caps: { "doc:42": ["subscribe"] }, expiresIn: 120 };

describe("§4 AUTH_CONNECT_URL: the request", () => {
  test("POST with the Cookie header, a Switchboard-Signature that verifies, body {}", async () => {
    const { backend, client } = setup(() => ({ kind: "ok", body: USER }));
    const identity = await client.identify("app_session=opaque-1; theme=dark");
    expect(identity).toMatchObject({ user: { id: "42", name: "Ana" }, caps: { "doc:42": ["subscribe"] }, via: "connect" });
    expect(identity!.exp! - Math.floor(Date.now() / 1000)).toBeWithin(119, 121);
    expect(backend.seen).toHaveLength(1);
    const seen = backend.seen[0]!;
    expect(seen.body).toBe("{}");
    expect(seen.signed).toBe(true);
    expect(seen.headers.cookie).toBe("app_session=opaque-1; theme=dark");
    expect(seen.headers["content-type"]).toBe("application/json");
  });
});

describe("§4 AUTH_CONNECT_URL: a framework's auth guard", () => {
  test("is asked for JSON (Accept: application/json): a signed-out user is its 401, not a redirect to its login page (503)", async () => {
    // Laravel's `auth` middleware, Rails/Devise: JSON callers get 401, everyone else a 302 to the login page.
    const guard = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) =>
        (req.headers.get("accept") ?? "").includes("application/json")
          ? Response.json({ message: "Unauthenticated." }, { status: 401 })
          : new Response(null, { status: 302, headers: { Location: "/login" } }),
    });
    try {
      const client = ConnectClient.from(
        { authConnectUrl: `http://127.0.0.1:${guard.port}/realtime/connect`, authConnectTimeoutMs: 2000, authConnectCacheS: 10, webhookSecret: SECRET, maxConnectionsPerIp: 100 },
        { log: { debug() {}, info() {}, warn() {}, error() {}, child: () => ({}) as Logger } as Logger },
      )!;
      expect(await refusal(client.identify("laravel_session=expired"))).toBe("resolved");
      expect(await client.identify("laravel_session=expired")).toBeNull();
    } finally {
      guard.stop(true);
    }
  });
});

describe("§4 AUTH_CONNECT_URL: answers", () => {
  test("401 and 403 refuse; 5xx, other statuses, bad bodies and silence are unavailable", async () => {
    const answers: Record<string, ConnectBehaviour> = {
      "s=401": { kind: "status", status: 401 },
      "s=403": { kind: "status", status: 403 },
      "s=500": { kind: "status", status: 500 },
      "s=503": { kind: "status", status: 503 },
      "s=404": { kind: "status", status: 404 },
      "s=garbage": { kind: "raw", text: "<html>" },
      "s=noid": { kind: "ok", body: { user: { name: "x" } } },
      "s=badcaps": { kind: "ok", body: { user: { id: "1" }, caps: { "room:a": ["fly"] } } },
      "s=badid": { kind: "ok", body: { user: { id: "a b" } } },
      "s=slow": { kind: "slow", ms: 1500, body: USER },
    };
    const { client, lines } = setup((cookie) => answers[cookie] ?? { kind: "status", status: 401 }, { timeoutMs: 300 });
    expect(await client.identify("s=401")).toBeNull();
    expect(await client.identify("s=403")).toBeNull();
    for (const cookie of ["s=500", "s=503", "s=404", "s=garbage", "s=noid", "s=badcaps", "s=badid"]) {
      expect(await refusal(client.identify(cookie))).toBe("unavailable");
    }
    const started = Date.now();
    expect(await refusal(client.identify("s=slow"))).toBe("unavailable");
    expect(Date.now() - started).toBeLessThan(1000);
    expect(lines.some((l) => l.includes("no answer within 300 ms"))).toBe(true);
    expect(lines.join("\n")).not.toMatch(/s=|Ana|garbage|<html>/);
  });

  test("a backend that is down is unavailable", async () => {
    const { backend, client } = setup(() => ({ kind: "ok", body: USER }));
    backend.stop();
    expect(await refusal(client.identify("s=1"))).toBe("unavailable");
  });

  test("a name left out falls back to the id; no expiresIn means no expiry", async () => {
    const { client } = setup(() => ({ kind: "ok", body: { user: { id: "auth0|9" } } }));
    expect(await client.identify("s=1")).toMatchObject({ user: { id: "auth0|9", name: "auth0|9" }, exp: null, caps: undefined });
  });

  test("an empty, blank or over-long name falls back to the id, as a token's name claim does (not a bad answer)", async () => {
    const names: Record<string, string> = { "s=empty": "", "s=blank": "   ", "s=long": "x".repeat(300) };
    const { client } = setup((cookie) => ({ kind: "ok", body: { user: { id: cookie.slice(2), name: names[cookie] } } }));
    for (const cookie of Object.keys(names)) expect((await client.identify(cookie))!.user).toEqual({ id: cookie.slice(2), name: cookie.slice(2) });
  });

  test("a fractional expiresIn (expiry minus now, computed in seconds) is cut to whole seconds, as AUTHZ_URL's ttlS is", async () => {
    const { client } = setup(() => ({ kind: "ok", body: { user: { id: "u8" }, expiresIn: 90.7 } }));
    const identity = await client.identify("s=1");
    expect(identity!.exp! - identity!.iat!).toBe(90);
  });

  test("a whole-number id is its decimal text, as in a token's claim; a fraction is a bad body", async () => {
    const { client } = setup((cookie) => ({ kind: "ok", body: { user: { id: cookie === "s=int" ? 42 : 4.2 } } }));
    expect(await client.identify("s=int")).toMatchObject({ user: { id: "42", name: "42" } });
    expect(await refusal(client.identify("s=frac"))).toBe("unavailable");
  });

  test("null name, caps and expiresIn count as left out (serializers write absent fields as null), as a token's null caps claim does", async () => {
    const { client } = setup(() => ({ kind: "ok", body: { user: { id: "u7", name: null }, caps: null, expiresIn: null } }));
    expect(await client.identify("s=1")).toMatchObject({ user: { id: "u7", name: "u7" }, exp: null, caps: undefined });
  });

  test("oversized cookies are refused without asking the app", async () => {
    const { backend, client } = setup(() => ({ kind: "ok", body: USER }));
    expect(await client.identify(`s=${"x".repeat(MAX_COOKIE_CHARS)}`)).toBeNull();
    expect(backend.seen).toHaveLength(0);
  });
});

describe("§4 AUTH_CONNECT_URL: cache and sharing", () => {
  test("cached per exact cookie text for AUTH_CONNECT_CACHE_S", async () => {
    const { backend, client, advance } = setup(() => ({ kind: "ok", body: { user: { id: "7" } } }), { cacheS: 10 });
    await client.identify("s=a");
    await client.identify("s=a");
    expect(backend.seen).toHaveLength(1);
    await client.identify("s=a ");
    expect(backend.seen).toHaveLength(2);
    advance(9_000);
    await client.identify("s=a");
    expect(backend.seen).toHaveLength(2);
    advance(1_500);
    await client.identify("s=a");
    expect(backend.seen).toHaveLength(3);
  });

  test("never past expiresIn; refusals and failures are not cached", async () => {
    let status = 401;
    const { backend, client, advance } = setup((cookie) =>
      cookie === "s=short" ? { kind: "ok", body: { user: { id: "7" }, expiresIn: 2 } } : status === 200 ? { kind: "ok", body: USER } : { kind: "status", status },
    );
    await client.identify("s=short");
    advance(1_500);
    await client.identify("s=short");
    expect(backend.seen).toHaveLength(1);
    advance(600);
    await client.identify("s=short");
    expect(backend.seen).toHaveLength(2);

    expect(await client.identify("s=x")).toBeNull();
    status = 500;
    expect(await refusal(client.identify("s=x"))).toBe("unavailable");
    status = 200;
    expect(await client.identify("s=x")).toMatchObject({ user: { id: "42" } });
    expect(backend.seen).toHaveLength(5);
  });

  test("identical lookups in flight share one request", async () => {
    const { backend, client } = setup(() => ({ kind: "slow", ms: 200, body: USER }));
    const results = await Promise.all(Array.from({ length: 50 }, () => client.identify("s=same")));
    expect(results.every((r) => r?.user.id === "42")).toBe(true);
    expect(backend.seen).toHaveLength(1);
    await Promise.all([client.identify("s=one"), client.identify("s=two")]);
    expect(backend.seen).toHaveLength(3);
  });
});
