/**
 * SPEC §5: NAMESPACES / NAMESPACES_FILE are validated at start; a bad field refuses to start with
 * one line naming it (every sentence is unit-tested in src/auth/namespaces.test.ts).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { TEST_ENV, freePort, session, spawnServer, startServer, killAllServers } from "./support/server.ts";
import { TestClient } from "./support/client.ts";

afterAll(() => killAllServers());

async function expectRefusal(env: Record<string, string | undefined>): Promise<string> {
  const spawned = spawnServer({ ...TEST_ENV, PORT: String(freePort()), ...env });
  const code = await Promise.race([spawned.exited, Bun.sleep(8000).then(() => "still running" as const)]);
  if (code === "still running") {
    spawned.proc.kill("SIGKILL");
    await spawned.exited;
  }
  expect(code).toBe(1);
  const lines = (spawned.stdout() + spawned.stderr()).split("\n").filter((l) => l.trim() !== "");
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

describe("NAMESPACES is validated at start", () => {
  test("a bad option: one line naming NAMESPACES.<ns>.<option>", async () => {
    expect(await expectRefusal({ NAMESPACES: JSON.stringify({ doc: { subscribe: "everyone" } }) })).toBe(
      "invalid configuration: NAMESPACES.doc.subscribe must be one of any, owner, caps, app, none",
    );
  });

  test("`app` without AUTHZ_URL refuses to start", async () => {
    expect(await expectRefusal({ NAMESPACES: JSON.stringify({ typing: { publish: "app" } }) })).toContain("NAMESPACES.typing uses \"app\", which needs AUTHZ_URL");
  });

  test("a NAMESPACES_FILE that does not exist refuses to start", async () => {
    expect(await expectRefusal({ NAMESPACES_FILE: "/nonexistent/namespaces.json" })).toContain("NAMESPACES_FILE cannot be read (ENOENT");
  });

  test("a valid NAMESPACES starts", async () => {
    const server = await startServer({ NAMESPACES: JSON.stringify({ doc: { presence: true, history: { size: 500, ttlS: 3600 } } }) });
    try {
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      server.kill();
    }
  }, 30_000);
});

describe("a redefined built-in namespace is replaced whole", () => {
  test("user redefined as {publish: any}: subscribe takes the option default (caps), so no inbox is joined at welcome", async () => {
    const server = await startServer({ NAMESPACES: JSON.stringify({ user: { publish: "any" } }) });
    const clients: TestClient[] = [];
    try {
      for (const name of ["alice", "bob"]) clients.push(await TestClient.connect(server.wsUrl, { cookie: (await session(server, name)).cookie }));
      const [alice, bob] = clients as [TestClient, TestClient];
      expect(await alice.request({ type: "subscribe", topic: "user:alice" })).toMatchObject({ type: "error", code: "forbidden" });
      expect(await bob.request({ type: "publish", topic: "user:alice", data: "dm" })).toMatchObject({ type: "ack", seq: 1 });
      expect((await alice.request({ type: "ping" })).type).toBe("pong");
      expect(alice.messages.size).toBe(0);
      // room is still the built-in one.
      expect(await alice.request({ type: "subscribe", topic: "room:x" })).toMatchObject({ type: "ack" });
    } finally {
      for (const c of clients) c.terminate();
      server.kill();
    }
  }, 30_000);
});
