/**
 * SPEC §8 "Cookies over https": only the `__Host-` session cookie is read (a plain cookie planted
 * from a sibling subdomain or over http is ignored), and responses carry Strict-Transport-Security.
 * https is what a trusted proxy says (TRUST_PROXY=true, X-Forwarded-Proto: https).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cookiePair, killAllServers, postJson, startServer, type TestServer } from "../support/server.ts";

let server: TestServer;
const https = { "X-Forwarded-Proto": "https" };
beforeAll(async () => {
  server = await startServer({ TRUST_PROXY: "true", USERS: "alice:alice-password,mallory:mallory-password" });
});
afterAll(() => {
  server?.kill();
  killAllServers();
});

async function loginAs(user: string, headers: Record<string, string>): Promise<string> {
  const res = await postJson(server, "/auth/login", { username: user, password: `${user}-password` }, headers);
  await res.arrayBuffer();
  expect(res.status).toBe(200);
  return cookiePair(res.headers.get("set-cookie")!);
}

async function me(cookie: string, headers: Record<string, string>) {
  const res = await fetch(`${server.url}/auth/me`, { headers: { Cookie: cookie, ...headers } });
  const body = (await res.json()) as { user?: { id: string } };
  return { status: res.status, user: body.user?.id, hsts: res.headers.get("strict-transport-security") };
}

describe("over https only the __Host- session cookie is read", () => {
  test("a plain cookie planted by a sibling subdomain is ignored over https; the __Host- one is read", async () => {
    const hostCookie = await loginAs("alice", https);
    expect(hostCookie).toStartWith("__Host-sb_session=");
    // The attacker's own valid session, planted as a plain cookie (a sibling subdomain can; `__Host-` it cannot).
    const planted = await loginAs("mallory", {});
    expect(planted).toStartWith("sb_session=");
    expect(await me(planted, https)).toMatchObject({ status: 401 });
    expect(await me(`${planted}; ${hostCookie}`, https)).toMatchObject({ status: 200, user: "alice" });
    // After the victim's logout only the planted cookie is left: still nobody, not mallory.
    const ticket = await fetch(`${server.url}/auth/ticket`, { method: "POST", headers: { Cookie: planted, Origin: `https://127.0.0.1:${server.port}`, ...https } });
    expect(ticket.status).toBe(401);
    await ticket.arrayBuffer();
  });

  test("over plain http the plain cookie is the session cookie", async () => {
    const plain = await loginAs("alice", {});
    expect(await me(plain, {})).toMatchObject({ status: 200, user: "alice" });
  });
});

describe("Strict-Transport-Security", () => {
  test("on responses served over https, not over http", async () => {
    const hostCookie = await loginAs("alice", https);
    expect((await me(hostCookie, https)).hsts).toMatch(/^max-age=\d{7,}/);
    const health = await fetch(`${server.url}/healthz`, { headers: https });
    expect(health.headers.get("strict-transport-security")).toMatch(/^max-age=/);
    await health.arrayBuffer();
    expect((await me("x=1", {})).hsts).toBeNull();
  });
});
