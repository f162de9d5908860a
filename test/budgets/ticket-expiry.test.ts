/**
 * SPEC §8: a socket opened with a ticket expires with the credential that minted it. A token of
 * TOKEN_TTL_S=10 mints a ticket; the ticket's socket is told `expiring` and closes with 4001 when
 * the token expires (the expiry sweep runs every second), not later and not never — unless it is
 * refreshed in-band like the token's own socket would be (SPEC §4).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient } from "../support/client.ts";
import { getToken, killAllServers, startServer, type TestServer } from "../support/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ TOKEN_TTL_S: "10" });
});
afterAll(() => {
  server?.kill();
  killAllServers();
});

describe("ticket sockets expire", () => {
  test("the socket of a ticket minted with a 10 s token closes with 4001 once the token expires", async () => {
    const token = await getToken(server, "alice");
    const minted = Date.now();
    const res = await fetch(`${server.url}/auth/ticket`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    const { ticket } = (await res.json()) as { ticket: string };
    const ws = await TestClient.connect(`${server.wsUrl}?ticket=${ticket}`);
    const close = await ws.waitClose(15_000);
    expect(close.code).toBe(4001);
    const after = Date.now() - minted;
    expect(after).toBeGreaterThan(8_500); // the token's exp is whole seconds: 9-10 s after minting
    expect(after).toBeLessThan(13_000);
    expect(ws.frames.filter((f) => f.type === "expiring")).toHaveLength(1);
  }, 20_000);

  test("it is told `expiring`, and a refresh with a fresh token keeps it open past the first token's expiry", async () => {
    const token = await getToken(server, "alice");
    const res = await fetch(`${server.url}/auth/ticket`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    const { ticket } = (await res.json()) as { ticket: string };
    const ws = await TestClient.connect(`${server.wsUrl}?ticket=${ticket}`);
    const expiring = await ws.until(() => ws.frames.find((f) => f.type === "expiring"), 10_000, "expiring");
    const reply = await ws.request({ type: "refresh", token: await getToken(server, "alice") });
    expect(reply.type).toBe("ack");
    expect(reply.expiresAt).toBeGreaterThan(expiring.expiresAt);
    await Bun.sleep(Math.max(0, expiring.expiresAt * 1000 + 2_500 - Date.now()));
    expect(ws.close).toBeNull();
    expect((await ws.request({ type: "ping" })).type).toBe("pong");
    ws.ws.close();
  }, 20_000);
});
