/**
 * The Fly.io deployment files checked against the app: fly.toml (port, checks, drain timing,
 * machines never auto-stopped, concurrency), the Dockerfile (pinned Bun, lockfile install,
 * non-root) and .dockerignore — and the app started with fly.toml's own [env] answers what Fly
 * will ask of it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { TEST_API_KEY, TEST_SESSION_SECRET, cookiePair, freePort, startServer, type TestServer } from "./support/server.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { scrape } from "./support/metrics.ts";
import { loadConfig } from "../src/config.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const read = (file: string) => Bun.file(`${ROOT}${file}`).text();

interface FlyToml {
  app: string;
  primary_region: string;
  kill_signal: string;
  kill_timeout: number;
  env: Record<string, string>;
  http_service: {
    internal_port: number;
    force_https: boolean;
    auto_stop_machines: string | boolean;
    min_machines_running: number;
    concurrency: { type: string; soft_limit: number; hard_limit: number };
    checks: { path: string; method?: string }[];
  };
  metrics?: { port: number; path: string };
}

let fly: FlyToml;
let dockerfile: string;
/** What `fly secrets set` provides in production; never in fly.toml. */
const SECRETS = ["SESSION_SECRET", "REDIS_URL", "API_KEY", "METRICS_TOKEN", "USERS"];
/** The close grace the drain adds after DRAIN_MS (gateway.drain), plus the supervisor and Redis shutdown. */
const DRAIN_OVERHEAD_MS = 1000 + 2000;

beforeAll(async () => {
  fly = Bun.TOML.parse(await read("fly.toml")) as FlyToml;
  dockerfile = await read("Dockerfile");
});

describe("fly.toml", () => {
  test("serves the app's port over https only, with the checks on /healthz and /readyz", () => {
    const port = fly.http_service.internal_port;
    expect(Number(fly.env.PORT)).toBe(port);
    expect(dockerfile).toMatch(new RegExp(`^EXPOSE ${port}$`, "m"));
    expect(fly.http_service.force_https).toBe(true);
    expect(fly.http_service.checks.map((c) => c.path).sort()).toEqual(["/healthz", "/readyz"]);
    // /metrics is private (SPEC §8 METRICS_PORT): Fly scrapes the app's metrics port, not the public one.
    expect(fly.metrics).toEqual({ port: Number(fly.env.METRICS_PORT), path: "/metrics" });
    expect(fly.metrics!.port).not.toBe(port);
  });

  test("never stops a machine that holds sockets, keeps one running, counts connections", () => {
    expect(["off", false]).toContainEqual(fly.http_service.auto_stop_machines);
    expect(fly.http_service.min_machines_running).toBeGreaterThanOrEqual(1);
    const { type, soft_limit, hard_limit } = fly.http_service.concurrency;
    expect(type).toBe("connections");
    expect(soft_limit).toBeGreaterThan(0);
    expect(soft_limit).toBeLessThan(hard_limit);
    // Fly stops routing to a full machine before the workers' own caps refuse with 503.
    expect(hard_limit).toBeLessThanOrEqual(Number(fly.env.WORKERS) * Number(fly.env.MAX_CONNECTIONS ?? 10_000));
  });

  test("kill_signal is one the server drains on, and kill_timeout outlasts the drain", () => {
    expect(["SIGTERM", "SIGINT"]).toContain(fly.kill_signal);
    const drainMs = loadConfig({ ...fly.env, SESSION_SECRET: TEST_SESSION_SECRET, REDIS_URL: "redis://127.0.0.1:6379" }).drainMs;
    expect(fly.kill_timeout * 1000).toBeGreaterThanOrEqual(drainMs + DRAIN_OVERHEAD_MS);
    expect(fly.kill_timeout).toBeLessThanOrEqual(300);
  });

  test("[env] is a valid production configuration once the secrets are set, and holds no secret", () => {
    for (const name of SECRETS) expect(Object.keys(fly.env)).not.toContain(name);
    expect(() => loadConfig(fly.env)).toThrow("SESSION_SECRET is required when NODE_ENV=production");
    const config = loadConfig({ ...fly.env, SESSION_SECRET: TEST_SESSION_SECRET, REDIS_URL: "redis://127.0.0.1:6379", FLY_REGION: "iad", FLY_MACHINE_ID: "148e21ea7d4589" });
    expect(config.nodeEnv).toBe("production");
    expect(config.trustProxy).toBe("fly");
    expect(config.workers).toBeGreaterThanOrEqual(2);
    expect([config.instanceId, config.region]).toEqual(["148e21ea7d4589", "iad"]);
  });
});

describe("Dockerfile and .dockerignore", () => {
  test("every stage is on oven/bun pinned to the exact Bun the tests run on", () => {
    const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!);
    const images = froms.filter((f) => f.includes("/") || f.includes(":"));
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) expect(image).toBe(`oven/bun:${Bun.version}`);
  });

  test("installs production dependencies from the lockfile, runs as a non-root user, starts like `bun run start`", async () => {
    expect(dockerfile).toMatch(/^RUN bun install --frozen-lockfile --production$/m);
    expect(dockerfile).toMatch(/^COPY package\.json bun\.lock /m);
    const user = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]).pop();
    expect(user).toBeDefined();
    expect(["root", "0"]).not.toContain(user);
    const cmd = JSON.parse(dockerfile.match(/^CMD\s+(\[.*\])$/m)![1]!) as string[];
    const pkg = JSON.parse(await read("package.json")) as { scripts: { start: string } };
    expect(cmd.join(" ")).toBe(pkg.scripts.start);
  });

  test(".dockerignore keeps secrets, history and local installs out of the build context", async () => {
    const ignored = (await read(".dockerignore")).split("\n").map((l) => l.trim());
    for (const entry of [".git", "node_modules", ".env", ".env.*"]) expect(ignored).toContain(entry);
  });
});

describe("the app started with fly.toml's [env]", () => {
  let redis: TestRedis;
  let machine: TestServer;
  const metricsPort = freePort();
  const clients = new Set<TestClient>();
  beforeAll(async () => {
    redis = await startRedis();
    machine = await startServer(
      {
        ...fly.env,
        // Local stand-ins: loopback instead of 0.0.0.0:8080, and what Fly and `fly secrets` provide.
        HOST: "127.0.0.1",
        PORT: String(freePort()),
        METRICS_PORT: String(metricsPort),
        INSTANCE_ID: undefined,
        FLY_MACHINE_ID: "148e21ea7d4589",
        FLY_REGION: "syd",
        SESSION_SECRET: TEST_SESSION_SECRET,
        REDIS_URL: redis.url,
        API_KEY: TEST_API_KEY,
        USERS: "ops:ops-password-123",
      },
      { startTimeoutMs: 20_000 },
    );
  }, 30_000);
  afterAll(async () => {
    await closeAll(clients);
    machine?.kill();
    await redis?.stop();
  });

  test("answers every check path with 200 and /metrics on METRICS_PORT only; sockets land on its workers", async () => {
    const deadline = Date.now() + 10_000;
    for (const check of fly.http_service.checks) {
      let status = 0;
      while (status !== 200 && Date.now() < deadline) {
        const res = await fetch(`${machine.url}${check.path}`, { method: check.method ?? "GET", signal: AbortSignal.timeout(2000) });
        status = res.status;
        await res.arrayBuffer();
        if (status !== 200) await Bun.sleep(50);
      }
      expect({ path: check.path, status }).toEqual({ path: check.path, status: 200 });
    }
    const metrics = await scrape({ url: `http://127.0.0.1:${metricsPort}` });
    expect(metrics.value("switchboard_info", { region: "syd", broker: "redis" })).toBeGreaterThanOrEqual(1);
    const publicMetrics = await fetch(`${machine.url}/metrics`);
    expect(publicMetrics.status).toBe(404);
    await publicMetrics.arrayBuffer();

    // Behind Fly's proxy (TRUST_PROXY): the https scheme gives the Secure __Host- cookie.
    const res = await fetch(`${machine.url}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Forwarded-Proto": "https", "Fly-Client-IP": "203.0.113.9" },
      body: JSON.stringify({ username: "ops", password: "ops-password-123" }),
    });
    expect(res.status).toBe(200);
    const setCookie = res.headers.get("set-cookie")!;
    expect(setCookie).toStartWith("__Host-");
    expect(setCookie).toContain("Secure");
    const c = await TestClient.connect(machine.wsUrl, { cookie: cookiePair(setCookie) });
    clients.add(c);
    const welcome = c.frames.find((f) => f.type === "welcome")!;
    expect(welcome.region).toBe("syd");
    expect(welcome.instance).toMatch(/^148e21ea7d4589-w\d+$/);
  });

  test("kill_signal drains it (1012) and it exits 0 well within kill_timeout", async () => {
    const c = [...clients][0]!;
    const started = Date.now();
    const code = await machine.stop(fly.kill_signal as NodeJS.Signals, fly.kill_timeout * 1000);
    const elapsed = Date.now() - started;
    expect(code).toBe(0);
    expect((await c.waitClose(1000)).code).toBe(1012);
    expect(elapsed).toBeLessThan(fly.kill_timeout * 1000);
  }, 20_000);
});
