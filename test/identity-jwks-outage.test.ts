/**
 * SPEC §4: a JWKS endpoint that is down at start-up, then comes up, then answers garbage, against a
 * real server process. Start-up says so in one line and serves; tokens work once the keys can be
 * read; later, garbage keeps the cached keys working, a new kid fails with 4001, and the server
 * keeps serving.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { freePort, killAllServers, startServer, type TestServer } from "./support/server.ts";
import { AUDIENCE, ISSUER, makeKey, serveJwks, signAppToken, type JwksServer } from "./support/jwks.ts";

let server: TestServer;
let jwks: JwksServer | null = null;
let jwksPort: number;
const clients: TestClient[] = [];

beforeAll(async () => {
  jwksPort = freePort();
  server = await startServer({ AUTH_JWKS_URL: `http://127.0.0.1:${jwksPort}/jwks.json`, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE });
});

afterAll(async () => {
  await closeAll(clients);
  await server?.stop();
  jwks?.stop();
  killAllServers();
});

async function authenticate(token: string): Promise<TestClient> {
  const c = new TestClient(server.wsUrl);
  clients.push(c);
  await c.waitOpen();
  c.send({ type: "auth", token });
  await c.until(() => c.frames.length > 0 || c.close !== null || undefined, 5000, "welcome or close", true);
  return c;
}

describe("§4 AUTH_JWKS_URL down at start-up, garbage later", () => {
  test("start-up: one warning line, and the server serves", async () => {
    await Bun.sleep(300);
    const warnings = server.stderr().split("\n").filter((l) => l.includes("AUTH_JWKS_URL"));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({ level: "warn" });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect(server.faults()).toEqual([]);
  });

  test("once the key set answers, tokens are accepted without a restart", async () => {
    const key = await makeKey("EdDSA");
    jwks = serveJwks([key], jwksPort);
    const c = await authenticate(await signAppToken(key, { sub: "late-user" }));
    expect(c.frames[0]).toMatchObject({ type: "welcome", user: { id: "late-user" } });

    // Garbage later: the cached key keeps working; a kid the server never saw fails with 4001
    // (it may not refetch yet, and what it would fetch is garbage).
    jwks.mode = "garbage";
    const rotated = await makeKey("ES256");
    jwks.keys = [key, rotated];
    const fresh = await authenticate(await signAppToken(rotated));
    expect(fresh.close?.code).toBe(4001);
    const again = await authenticate(await signAppToken(key, { sub: "still-works" }));
    expect(again.frames[0]).toMatchObject({ type: "welcome", user: { id: "still-works" } });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect(server.faults()).toEqual([]);
  });
});
