/**
 * SPEC §4 in-band refresh, against a real server process: a socket authenticated by something
 * that expires is told `expiring` (a tenth of its lifetime before the end, at least 5 s, at most
 * 60 s), answers `refresh` and keeps its subscriptions and presence; a refresh for another user,
 * or none by the expiry, closes it with 4001. App tokens are HS256 (AUTH_JWT_SECRET) here.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { getToken, killAllServers, login, startServer, type TestServer } from "./support/server.ts";
import { signHsToken } from "./support/jwks.ts";

const SECRET = "app-jwt-secret-for-refresh-0123456789abcdef";
let server: TestServer;
const clients: TestClient[] = [];

beforeAll(async () => {
  server = await startServer({ AUTH_JWT_SECRET: SECRET, TOKEN_TTL_S: "10" });
});

afterAll(async () => {
  await closeAll(clients);
  await server?.stop();
  killAllServers();
});

async function connect(token: string): Promise<TestClient> {
  const c = new TestClient(server.wsUrl);
  clients.push(c);
  await c.waitOpen();
  c.send({ type: "auth", token });
  await c.welcome();
  return c;
}

const appToken = (sub: string, expiresIn: number, claims: Record<string, unknown> = {}) => signHsToken(SECRET, { sub, expiresIn, claims });

describe("§4 expiring → refresh → ack on the same socket", () => {
  test.concurrent("an 8 s token is told expiring 5 s before its end; a refresh keeps subscriptions and presence", async () => {
    const started = Date.now();
    const c = await connect(await appToken("rita", 8));
    await c.subscribe("room:refresh");
    const watcher = await TestClient.connect(server.wsUrl, { cookie: await login(server, "alice") });
    clients.push(watcher);
    await watcher.subscribe("room:refresh");

    const expiring = await c.nextType("expiring", 6000);
    const firstExp = expiring.expiresAt as number;
    expect(Math.abs(firstExp * 1000 - (started + 8000))).toBeLessThan(1500);
    // Told 5 s (the minimum) before the end.
    expect(firstExp * 1000 - Date.now()).toBeWithin(2000, 5500);

    const ack = await c.request({ type: "refresh", token: await appToken("rita", 60), ref: 41 });
    expect(ack).toMatchObject({ type: "ack", ref: 41 });
    expect(ack.expiresAt as number).toBeGreaterThan(firstExp + 40);

    // Past the first expiry the socket is still open, still subscribed, with no presence change.
    await Bun.sleep(Math.max(0, firstExp * 1000 + 2500 - Date.now()));
    expect(c.close).toBeNull();
    await watcher.publish("room:refresh", { n: 1 });
    expect((await c.waitMessages("room:refresh", 1))[0]!.data).toEqual({ n: 1 });
    expect(watcher.frames.filter((f) => f.type === "presence.leave" && f.user?.id === "rita")).toEqual([]);
    expect(watcher.frames.filter((f) => f.type === "presence.join" && f.user?.id === "rita")).toEqual([]);
  }, 20_000);

  test.concurrent("no refresh by the expiry → 4001 within 2 s of it", async () => {
    const c = await connect(await appToken("nora", 6));
    const expiring = await c.nextType("expiring", 4000);
    const closed = await c.waitClose(6000);
    expect(closed.code).toBe(4001);
    const lateness = Date.now() - (expiring.expiresAt as number) * 1000;
    expect(lateness).toBeGreaterThan(-1000);
    expect(lateness).toBeLessThan(2000);
  }, 15_000);

  test.concurrent("a Switchboard token socket (TOKEN_TTL_S=10) is told expiring and refreshes with a new /auth/token token", async () => {
    const c = await connect(await getToken(server, "carol"));
    const expiring = await c.nextType("expiring", 7000);
    expect(typeof expiring.expiresAt).toBe("number");
    const ack = await c.request({ type: "refresh", token: await getToken(server, "carol") });
    expect(ack.type).toBe("ack");
    expect(ack.expiresAt as number).toBeGreaterThanOrEqual(expiring.expiresAt as number);
  }, 15_000);

  test("a refresh for another user → 4001", async () => {
    const c = await connect(await appToken("mallory", 60));
    c.send({ type: "refresh", token: await appToken("victim", 60), ref: 1 });
    expect((await c.waitClose()).code).toBe(4001);
  });

  test("an invalid refresh token → error unauthorized; the socket stays", async () => {
    const c = await connect(await appToken("pat", 60));
    const reply = await c.request({ type: "refresh", token: await signHsToken("some-other-secret-0123456789abcdef-xyz", { sub: "pat" }) });
    expect(reply).toMatchObject({ type: "error", code: "unauthorized" });
    const expired = await c.request({ type: "refresh", token: await appToken("pat", -60) });
    expect(expired).toMatchObject({ type: "error", code: "unauthorized" });
    expect((await c.request({ type: "ping" })).type).toBe("pong");
  });

  test("a built-in cookie session has nothing to refresh: bad_request", async () => {
    const c = await TestClient.connect(server.wsUrl, { cookie: await login(server, "bob") });
    clients.push(c);
    const reply = await c.request({ type: "refresh", token: await appToken("bob", 60) });
    expect(reply).toMatchObject({ type: "error", code: "bad_request" });
  });
});
