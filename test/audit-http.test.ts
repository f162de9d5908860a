/**
 * Black-box audit of the operator and HTTP surface (SPEC §1, §2): regressions for what the audit
 * found. Real server processes only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TEST_ENV, apiPublish, freePort, killAllServers, spawnServer, startServer, type TestServer } from "./support/server.ts";

let server: TestServer; // API_KEY set
let noApi: TestServer; // API_KEY unset

beforeAll(async () => {
  [server, noApi] = await Promise.all([startServer(), startServer({ API_KEY: undefined })]);
});

afterAll(async () => {
  await Promise.all([server?.stop(), noApi?.stop()]);
  killAllServers();
});

/** Starts the server with `env` and expects it to exit non-zero on its own: returns its output lines. */
async function refusal(env: Record<string, string | undefined>): Promise<string[]> {
  const spawned = spawnServer({ ...TEST_ENV, ...env });
  const code = await Promise.race([spawned.exited, Bun.sleep(8000).then(() => "still running" as const)]);
  if (code === "still running") {
    spawned.proc.kill("SIGKILL");
    await spawned.exited;
  }
  expect(code).not.toBe(0);
  return (spawned.stdout() + spawned.stderr()).split("\n").filter((l) => l.trim() !== "");
}

describe("§1 a bad value (USERS, or a HOST or PORT that cannot be listened on) exits non-zero with one line naming the variable", () => {
  test("HOST that is no address of this machine → one line naming HOST", async () => {
    const lines = await refusal({ HOST: "not-a-host.invalid", PORT: String(freePort()) });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("HOST=not-a-host.invalid");
    expect(lines[0]).not.toMatch(/\bat .*\.ts:\d+/);
  });

  test("USERS naming one user twice → one line naming USERS (it used to keep the last password silently)", async () => {
    const lines = await refusal({ USERS: "ann:first-password,ann:second-password", PORT: String(freePort()) });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("USERS");
    expect(lines[0]).toContain("ann");
    expect(lines.join("\n")).not.toContain("password");
  });

  test("PORT already in use → one line naming PORT", async () => {
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const lines = await refusal({ PORT: String(holder.port) });
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`PORT=${holder.port}`);
    } finally {
      holder.stop(true);
    }
  });
});

describe("§2 POST /api/publish: a body nested deeper than a frame may be is 400, never a false 503", () => {
  const nested = (levels: number) => "[".repeat(levels) + "]".repeat(levels);

  test("data nested 50,000 levels → 400 bad_request (it used to overflow the stack: 503 'broker unreachable, retry')", async () => {
    const started = performance.now();
    const res = await apiPublish(server, `{"topic":"room:deep","data":${nested(50_000)}}`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("bad_request");
    expect(performance.now() - started).toBeLessThan(300);
  });

  test("the limit is the frame's (32 levels, body included): 31 levels of data publish, 32 do not", async () => {
    const ok = await apiPublish(server, `{"topic":"room:deep","data":${nested(31)}}`);
    expect(ok.status).toBe(202);
    expect(ok.body).toMatchObject({ topic: "room:deep", seq: 1 });
    const deep = await apiPublish(server, `{"topic":"room:deep","data":${nested(32)}}`);
    expect(deep.status).toBe(400);
    const after = await apiPublish(server, { topic: "room:deep", data: "flat" });
    expect(after.body.seq).toBe(2);
  });
});

describe("§2 GET /metrics with METRICS_TOKEN", () => {
  test("the token is required; the Bearer scheme is case-insensitive, as on /api (it used to 401 'bearer')", async () => {
    const guarded = await startServer({ METRICS_TOKEN: "metrics-token-1234" });
    try {
      const status = async (authorization?: string) =>
        (await fetch(`${guarded.url}/metrics`, { headers: authorization ? { Authorization: authorization } : {} })).status;
      expect(await status()).toBe(401);
      expect(await status("Bearer wrong")).toBe(401);
      expect(await status("Bearer metrics-token-1234")).toBe(200);
      expect(await status("bearer metrics-token-1234")).toBe(200);
    } finally {
      await guarded.stop();
    }
  });
});

describe("§2 a route called with a method it does not have: 405 with Allow, JSON error body", () => {
  const cases: [method: string, path: string, allow: string][] = [
    ["GET", "/auth/login", "POST"],
    ["OPTIONS", "/auth/ticket", "POST"],
    ["POST", "/auth/me", "GET, HEAD"],
    ["GET", "/api/publish", "POST"],
    ["DELETE", "/api/presence/room:a", "GET, HEAD"],
    ["POST", "/healthz", "GET, HEAD"],
    ["POST", "/ws", "GET, HEAD"],
  ];
  for (const [method, path, allow] of cases) {
    test(`${method} ${path} → 405, Allow: ${allow}`, async () => {
      const res = await fetch(`${server.url}${path}`, { method });
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe(allow);
      expect(body.error.code).toBe("bad_request");
      expect(body.error.message).toContain(method);
    });
  }

  test("an unknown path is still a JSON 404, whatever the method", async () => {
    for (const method of ["GET", "POST", "OPTIONS"]) {
      const res = await fetch(`${server.url}/no-such-route`, { method });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_found");
    }
  });

  test("without API_KEY /api/publish does not exist: 404 for every method, not 405", async () => {
    for (const method of ["GET", "POST", "PUT"]) {
      const res = await fetch(`${noApi.url}/api/publish`, { method });
      expect(res.status).toBe(404);
      expect(res.headers.get("allow")).toBeNull();
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_found");
    }
  });

  test("no server faults", () => {
    expect(server.faults()).toEqual([]);
    expect(noApi.faults()).toEqual([]);
  });
});

describe("§2 every /auth response is no-store, refusals by the body limit included", () => {
  test("a 413 on /auth/login carries Cache-Control: no-store", async () => {
    const res = await fetch(`${server.url}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: "x".repeat(2 << 20) });
    expect(res.status).toBe(413);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("too_large");
  });
});
