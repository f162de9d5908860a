/**
 * SPEC §1: the environment is validated at start; a bad value exits non-zero with one clear line
 * naming the variable, and no stack trace.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { TEST_ENV, freePort, spawnServer, startServer, killAllServers } from "./support/server.ts";

afterAll(() => killAllServers());

/** Starts the server with `env` and expects it to refuse: returns its output. */
async function expectRefusal(env: Record<string, string | undefined>): Promise<string> {
  const spawned = spawnServer({ ...TEST_ENV, PORT: String(freePort()), ...env });
  const code = await Promise.race([spawned.exited, Bun.sleep(8000).then(() => "still running" as const)]);
  if (code === "still running") {
    spawned.proc.kill("SIGKILL");
    await spawned.exited;
  }
  const output = (spawned.stdout() + spawned.stderr()).trim();
  expect(code).not.toBe(0);
  return output;
}

function expectOneLineNaming(output: string, variable: string) {
  const lines = output.split("\n").filter((l) => l.trim() !== "");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(variable);
  expect(output).not.toMatch(/\n\s+at |\bat .*\.ts:\d+/);
}

describe("a bad value exits non-zero with one line naming the variable", () => {
  const cases: [string, Record<string, string | undefined>, string][] = [
    ["PORT not a number", { PORT: "abc" }, "PORT"],
    ["PORT out of range", { PORT: "70000" }, "PORT"],
    ["MAX_PAYLOAD_BYTES negative", { MAX_PAYLOAD_BYTES: "-1" }, "MAX_PAYLOAD_BYTES"],
    ["AUTH_TIMEOUT_MS not a number", { AUTH_TIMEOUT_MS: "soon" }, "AUTH_TIMEOUT_MS"],
    // A blank is not 0: PORT=" " would listen on a random port, HISTORY_SIZE=" " keep no history.
    ["PORT blank", { PORT: " " }, "PORT"],
    ["HISTORY_SIZE blank", { HISTORY_SIZE: "\t" }, "HISTORY_SIZE"],
    ["DRAIN_MS in hex", { DRAIN_MS: "0x10" }, "DRAIN_MS"],
    ["MAX_CONNECTIONS with an exponent", { MAX_CONNECTIONS: "1e3" }, "MAX_CONNECTIONS"],
    ["REDIS_URL with another scheme", { REDIS_URL: "http://127.0.0.1:6379" }, "REDIS_URL"],
    ["REDIS_URL listing two nodes without REDIS_CLUSTER", { REDIS_URL: "redis://127.0.0.1:7000,redis://127.0.0.1:7001" }, "REDIS_CLUSTER"],
    ["REDIS_COMMAND_TIMEOUT_MS below 50", { REDIS_URL: "redis://127.0.0.1:6379", REDIS_COMMAND_TIMEOUT_MS: "10" }, "REDIS_COMMAND_TIMEOUT_MS"],
    ["ALLOWED_ORIGINS with a path", { ALLOWED_ORIGINS: "https://app.example.com/" }, "ALLOWED_ORIGINS"],
    ["ALLOWED_ORIGINS with null", { ALLOWED_ORIGINS: "null" }, "ALLOWED_ORIGINS"],
    ["TRUST_PROXY not a boolean", { TRUST_PROXY: "maybe" }, "TRUST_PROXY"],
    ["USERS malformed", { USERS: "alice" }, "USERS"],
    ["NODE_ENV unknown", { NODE_ENV: "staging" }, "NODE_ENV"],
    ["SESSION_SECRET shorter than 32 bytes", { SESSION_SECRET: "x".repeat(31) }, "SESSION_SECRET"],
  ];
  for (const [name, env, variable] of cases) {
    test(name, async () => {
      expectOneLineNaming(await expectRefusal(env), variable);
    });
  }
});

describe("ALLOWED_ORIGINS: an entry no browser would send as its Origin names the one it would", () => {
  const entries: [string, string][] = [
    ["https://App.Example.com", "https://app.example.com"],
    ["https://app.example.com:443", "https://app.example.com"],
    ["http://app.example.com:8080/", "http://app.example.com:8080"],
  ];
  for (const [entry, sent] of entries) {
    test(entry, async () => {
      const output = await expectRefusal({ ALLOWED_ORIGINS: entry });
      expectOneLineNaming(output, "ALLOWED_ORIGINS");
      expect(output).toContain(`a browser sends ${sent}`);
    });
  }
});

describe("a value that passes the schema but cannot be served exits the same way (USERS naming a user twice, a HOST or PORT that cannot be listened on)", () => {
  /** The refusal's non-empty output lines. */
  const refusalLines = async (env: Record<string, string | undefined>) => (await expectRefusal(env)).split("\n").filter((l) => l.trim() !== "");

  test("HOST that is no address of this machine → one line naming HOST", async () => {
    const lines = await refusalLines({ HOST: "not-a-host.invalid" });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("HOST=not-a-host.invalid");
    expect(lines[0]).not.toMatch(/\bat .*\.ts:\d+/);
  });

  test("USERS naming one user twice → one line naming USERS and the user, never a password (not the last password kept silently)", async () => {
    const lines = await refusalLines({ USERS: "ann:first-password,ann:second-password" });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("USERS");
    expect(lines[0]).toContain("ann");
    expect(lines.join("\n")).not.toContain("password");
  });

  test("PORT already in use → one line naming PORT", async () => {
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const lines = await refusalLines({ PORT: String(holder.port) });
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`PORT=${holder.port}`);
    } finally {
      holder.stop(true);
    }
  });
});

describe("production needs a real SESSION_SECRET", () => {
  test("NODE_ENV=production without SESSION_SECRET refuses to start", async () => {
    expectOneLineNaming(await expectRefusal({ NODE_ENV: "production", SESSION_SECRET: undefined }), "SESSION_SECRET");
  });

  test("NODE_ENV=production with a 31-byte SESSION_SECRET refuses to start", async () => {
    expectOneLineNaming(await expectRefusal({ NODE_ENV: "production", SESSION_SECRET: "x".repeat(31) }), "SESSION_SECRET");
  });

  test("NODE_ENV=production with a 32-byte SESSION_SECRET starts", async () => {
    const server = await startServer({ NODE_ENV: "production", SESSION_SECRET: "s".repeat(32), USERS: "ops:ops-password-123" });
    try {
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      server.kill();
    }
  }, 30_000);

  test("outside production a missing SESSION_SECRET is generated, with a warning", async () => {
    const server = await startServer({ NODE_ENV: "development", SESSION_SECRET: undefined, LOG_LEVEL: "warn" });
    try {
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      expect(server.logs()).toContain("SESSION_SECRET");
    } finally {
      server.kill();
    }
  }, 30_000);
});

describe("WORKERS", () => {
  test("WORKERS=2 without REDIS_URL refuses to start", async () => {
    const output = await expectRefusal({ WORKERS: "2", REDIS_URL: undefined });
    expectOneLineNaming(output, "WORKERS");
    expect(output).toContain("REDIS_URL");
  });
});
