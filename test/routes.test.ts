/**
 * SPEC §2 routing: every path answers with a JSON error body whatever the method — 405 with
 * `Allow` for a method a route does not have, 404 for a path that does not exist, and without
 * `API_KEY` the server API does not exist at all (404, never 405).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { killAllServers, startServer, type TestServer } from "./support/server.ts";

let server: TestServer; // API_KEY set
let noApi: TestServer; // API_KEY unset

beforeAll(async () => {
  [server, noApi] = await Promise.all([startServer(), startServer({ API_KEY: undefined })]);
});

afterAll(async () => {
  await Promise.all([server?.stop(), noApi?.stop()]);
  killAllServers();
});

describe("a route called with a method it does not have: 405 with Allow, JSON error body", () => {
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
});

describe("paths that do not exist", () => {
  test("an unknown path is a JSON 404, whatever the method", async () => {
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
});

describe("no server faults", () => {
  test("neither server logged an error, stack trace or unhandled rejection", () => {
    expect(server.faults()).toEqual([]);
    expect(noApi.faults()).toEqual([]);
  });
});
