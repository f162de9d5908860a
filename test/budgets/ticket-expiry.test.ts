/**
 * SPEC §8: a socket opened with a ticket expires with the credential that minted it. A token of
 * TOKEN_TTL_S=10 mints a ticket; the ticket's socket closes with 4001 when the token expires
 * (the expiry sweep runs every second), not later and not never.
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
  }, 20_000);
});
