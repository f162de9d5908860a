/**
 * Starts the real server (`bun src/server.ts`) as a child process on a free port, for black-box
 * tests. Configuration goes through the environment only, as in production (SPEC §1).
 *
 * Every process started here dies with the test process (parent-death signal), and
 * `killAllServers()` in a file's `afterAll` kills any a test lost track of.
 */
import type { Subprocess } from "bun";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "./ports.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const ENTRY = "src/server.ts";

/** A session secret of ≥ 32 bytes, fixed so that tests are reproducible. */
export const TEST_SESSION_SECRET = "test-session-secret-0123456789abcdef-0123456789";
export const TEST_API_KEY = "test-api-key-0123456789abcdef";

/** Defaults for every test server; a test overrides any of them (`undefined` unsets). */
export const TEST_ENV: Record<string, string> = {
  NODE_ENV: "test",
  HOST: "127.0.0.1",
  SESSION_SECRET: TEST_SESSION_SECRET,
  API_KEY: TEST_API_KEY,
  LOG_LEVEL: "warn",
  INSTANCE_ID: "test-instance",
};

export const PASSWORDS: Record<string, string> = {
  alice: "alice-password",
  bob: "bob-password",
  carol: "carol-password",
};

export interface TestServer {
  /** `http://127.0.0.1:<port>`, also the server's own origin. */
  url: string;
  wsUrl: string;
  port: number;
  origin: string;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Sends `signal` (SIGTERM by default) and resolves with the exit code once the process is gone. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** SIGKILL if still running; safe to call twice. */
  kill(): void;
  /** Everything the process wrote so far, stdout then stderr. */
  logs(): string;
  stdout(): string;
  stderr(): string;
  /**
   * Output lines that signal a server fault: log lines at level "error" or "fatal", and anything
   * that is not a JSON log line (a stack trace, Bun's report of an unhandled rejection).
   */
  faults(): string[];
  /** Cached sessions per user name, so tests do not pay argon2 for every socket. */
  sessions: Map<string, Session>;
}

export interface Session {
  cookie: string;
  user: { id: string; name: string };
}

const running = new Set<Subprocess>();

/**
 * SIGKILLs every server process this test process started that is still running. Call it in
 * `afterAll`: `bun test` fires no `exit` event, so nothing else catches a server a test lost track of.
 * (A crashed or killed test runner is covered by the parent-death signal set in `spawnServer`.)
 */
export function killAllServers(): void {
  for (const p of running) {
    try {
      p.kill("SIGKILL");
    } catch {}
  }
}

/** `setpriv --pdeathsig KILL`: the kernel kills the server when the test process dies, however it dies. */
const PDEATHSIG = Bun.which("setpriv") ? ["setpriv", "--pdeathsig", "KILL", "--"] : [];

/** A free port of this test worker's own block (support/ports.ts: safe under `bun test --parallel`). */
export { freePort };

/**
 * `SB_TEST_LOG_DIR=<dir>`: every server process's output is also written, as it comes, to
 * `<dir>/<INSTANCE_ID>-<pid>.stdout.log` and `.stderr.log`, so the logs of a flaky run survive the
 * test process (`bun test` shows a server's output only when a test puts it in its failure message).
 */
const LOG_DIR = process.env.SB_TEST_LOG_DIR;

/** Collects a pipe into a string as it is written, so the child never blocks on a full pipe. */
function collect(stream: ReadableStream<Uint8Array>, logFile?: string): { text(): string; done: Promise<void> } {
  let text = "";
  const decoder = new TextDecoder();
  const done = (async () => {
    try {
      for await (const chunk of stream) {
        const piece = decoder.decode(chunk, { stream: true });
        text += piece;
        if (logFile !== undefined) appendFileSync(logFile, piece);
      }
    } catch {}
  })();
  return { text: () => text, done };
}

export interface SpawnResult {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  stdout(): string;
  stderr(): string;
  exited: Promise<number>;
}

/** Spawns the server with exactly `env` (plus PATH/HOME), without waiting for anything. */
export function spawnServer(env: Record<string, string | undefined>): SpawnResult {
  const fullEnv: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
  if (process.env.HOME) fullEnv.HOME = process.env.HOME;
  for (const [k, v] of Object.entries(env)) if (v !== undefined) fullEnv[k] = v;
  const proc = Bun.spawn([...PDEATHSIG, "bun", ENTRY], {
    cwd: ROOT,
    env: fullEnv,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  running.add(proc);
  void proc.exited.then(() => running.delete(proc));
  const logFile = (stream: string) => (LOG_DIR === undefined ? undefined : join(LOG_DIR, `${fullEnv.INSTANCE_ID ?? "server"}-${proc.pid}.${stream}.log`));
  const out = collect(proc.stdout, logFile("stdout"));
  const err = collect(proc.stderr, logFile("stderr"));
  // Resolve `exited` only once both pipes are fully read, so callers see the last lines.
  const exited = proc.exited.then(async (code) => {
    await Promise.race([Promise.all([out.done, err.done]), Bun.sleep(1000)]);
    return code;
  });
  return { proc, stdout: out.text, stderr: err.text, exited };
}

/**
 * Starts a server on a free port and waits (bounded) until `/healthz` answers 200.
 * Throws with the process's output if it exits or does not become healthy in time.
 */
export async function startServer(
  env: Record<string, string | undefined> = {},
  opts: { startTimeoutMs?: number } = {},
): Promise<TestServer> {
  const startTimeoutMs = opts.startTimeoutMs ?? 15_000;
  for (let attempt = 0; ; attempt++) {
    const port = env.PORT !== undefined ? Number(env.PORT) : freePort();
    const spawned = spawnServer({ ...TEST_ENV, ...env, PORT: String(port) });
    const { proc } = spawned;
    const origin = `http://127.0.0.1:${port}`;
    let exitCode: number | null = null;
    void proc.exited.then((c) => (exitCode = c));
    const deadline = Date.now() + startTimeoutMs;
    let healthy = false;
    while (Date.now() < deadline && exitCode === null) {
      try {
        const res = await fetch(`${origin}/healthz`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) {
          healthy = true;
          break;
        }
      } catch {}
      await Bun.sleep(50);
    }
    const logs = () => spawned.stdout() + spawned.stderr();
    if (!healthy) {
      // Read before the kill below: its SIGKILL would show up here as "exited with code 137".
      const exitedByItself = exitCode as number | null;
      proc.kill("SIGKILL");
      await spawned.exited;
      const output = logs().trim().split("\n").slice(-30).join("\n");
      // Another process may have taken the port between freePort() and listen: try once more.
      if (attempt === 0 && env.PORT === undefined && /EADDRINUSE|in use/i.test(output)) continue;
      throw new Error(
        exitedByItself !== null
          ? `server exited with code ${exitedByItself} before /healthz answered:\n${output}`
          : `server did not answer /healthz with 200 within ${startTimeoutMs} ms:\n${output}`,
      );
    }
    return {
      url: origin,
      wsUrl: `ws://127.0.0.1:${port}/ws`,
      port,
      origin,
      proc,
      async stop(signal = "SIGTERM", timeoutMs = 10_000) {
        if (exitCode === null) proc.kill(signal);
        const code = await Promise.race([spawned.exited, Bun.sleep(timeoutMs).then(() => "timeout" as const)]);
        if (code === "timeout") {
          proc.kill("SIGKILL");
          await spawned.exited;
          throw new Error(`server did not exit within ${timeoutMs} ms of ${signal}`);
        }
        return code;
      },
      kill() {
        if (exitCode === null && !proc.killed) proc.kill("SIGKILL");
      },
      logs,
      faults: () => faultLines(logs()),
      stdout: spawned.stdout,
      stderr: spawned.stderr,
      sessions: new Map(),
    };
  }
}

export function faultLines(output: string): string[] {
  return output
    .split("\n")
    .filter((line) => line.trim() !== "")
    .filter((line) => {
      try {
        const entry = JSON.parse(line) as { level?: unknown };
        return entry.level === "error" || entry.level === "fatal";
      } catch {
        return true;
      }
    });
}

/** The first `name=value` pair of a Set-Cookie header. */
export function cookiePair(setCookie: string): string {
  return setCookie.split(";")[0]!.trim();
}

/** POST JSON; returns the response (body not read). */
export function postJson(server: TestServer, path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Logs in and returns the session cookie as `name=value`, ready for a Cookie header. */
export async function login(server: TestServer, user: string, password = PASSWORDS[user] ?? ""): Promise<string> {
  return (await loginSession(server, user, password)).cookie;
}

/** Logs in and returns the cookie and the user the server answered with. */
export async function loginSession(server: TestServer, user: string, password = PASSWORDS[user] ?? ""): Promise<Session> {
  const res = await postJson(server, "/auth/login", { username: user, password });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`login ${user} → ${res.status} ${text}`);
  const setCookie = res.headers.get("set-cookie");
  if (!setCookie) throw new Error(`login ${user} → 200 without Set-Cookie`);
  const body = JSON.parse(text) as { user: { id: string; name: string } };
  return { cookie: cookiePair(setCookie), user: body.user };
}

const loggingIn = new WeakMap<TestServer, Map<string, Promise<Session>>>();

/**
 * A cached session for `user` on this server (one login per user per server, also when many
 * ask at once: parallel logins past LOGIN_MAX_FAILURES would be refused, SPEC §8).
 */
export async function session(server: TestServer, user: string): Promise<Session> {
  const cached = server.sessions.get(user);
  if (cached) return cached;
  let pending = loggingIn.get(server);
  if (!pending) loggingIn.set(server, (pending = new Map()));
  let login = pending.get(user);
  if (!login) {
    login = loginSession(server, user).finally(() => pending.delete(user));
    pending.set(user, login);
  }
  const s = await login;
  server.sessions.set(user, s);
  return s;
}

/** A single-use ticket for `/ws?ticket=`, asked for with the cookie from the server's own origin. */
export async function getTicket(server: TestServer, cookie: string): Promise<string> {
  const res = await fetch(`${server.url}/auth/ticket`, {
    method: "POST",
    headers: { Cookie: cookie, Origin: server.origin },
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`ticket → ${res.status} ${text}`);
  return (JSON.parse(text) as { ticket: string }).ticket;
}

/** A JWT for first-message auth. */
export async function getToken(server: TestServer, user: string, password = PASSWORDS[user] ?? ""): Promise<string> {
  const res = await postJson(server, "/auth/token", { username: user, password });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`token ${user} → ${res.status} ${text}`);
  return (JSON.parse(text) as { token: string }).token;
}

/** `POST /api/publish` with the test API key; returns status and parsed body. */
export async function apiPublish(
  server: TestServer,
  body: unknown,
  apiKey: string | null = TEST_API_KEY,
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (apiKey !== null) headers.Authorization = `Bearer ${apiKey}`;
  const res = await postJson(server, "/api/publish", body, headers);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Reads a response as JSON, keeping the raw text for assertions about leaks. */
export async function readJson(res: Response): Promise<{ status: number; body: any; text: string; headers: Headers }> {
  const text = await res.text();
  let body: unknown = undefined;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body, text, headers: res.headers };
}
