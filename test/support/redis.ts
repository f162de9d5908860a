/**
 * A real redis-server for tests, on a free loopback port, with no persistence: `kill()` is a crash
 * (SIGKILL), `restart()` brings it back on the same port, empty.
 */
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./server.ts";
import { closeConnection, connectWithin, createConnection } from "../../src/redis/connection.ts";
import type { Hearing } from "../suites/stores.suite.ts";

const BINARY = "redis-server";
/** `setpriv --pdeathsig KILL`: the kernel kills redis-server when the test process dies, however it dies. */
const PDEATHSIG = Bun.which("setpriv") ? ["setpriv", "--pdeathsig", "KILL", "--"] : [];

export interface TestRedis {
  url: string;
  port: number;
  /** SIGKILL: clients see the connection drop, nothing is saved. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. Kills it first when it runs. */
  restart(): Promise<void>;
  /** Stops it for good. */
  stop(): Promise<void>;
  /** Sends a signal to the running server: SIGSTOP freezes it (connections stay open, nothing answers), SIGCONT resumes. */
  signal(signal: "SIGSTOP" | "SIGCONT"): void;
  /** Runs one command over a raw connection and returns the first line of the reply. */
  command(...args: string[]): Promise<string>;
}

export interface RedisOptions {
  /** More `redis-server` arguments, e.g. `["--rename-command", "FUNCTION", ""]` for a Redis without Functions (as 6.2). */
  args?: string[];
}

export async function startRedis(options: RedisOptions = {}): Promise<TestRedis> {
  if (Bun.which(BINARY) === null) {
    throw new Error("redis-server is not installed: run `apt-get install -y redis-server`");
  }
  const port = freePort();
  // Its own directory: a replica's full sync writes RDB files there, never in the repository.
  const dir = mkdtempSync(join(tmpdir(), "sb-redis-"));
  let child: Subprocess | undefined;

  const spawn = async () => {
    child = Bun.spawn(
      [...PDEATHSIG, BINARY, "--save", "", "--appendonly", "no", "--port", String(port), "--dir", dir, "--bind", "127.0.0.1", "--protected-mode", "no", "--loglevel", "warning", ...(options.args ?? [])],
      { stdout: "ignore", stderr: "pipe" },
    );
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        const err = await new Response(child.stderr as ReadableStream).text();
        throw new Error(`redis-server exited at start: ${err.trim().split("\n").pop()}`);
      }
      if ((await raw(port, ["PING"]).catch(() => "")) === "+PONG") return;
      await Bun.sleep(20);
    }
    throw new Error(`redis-server did not answer on port ${port} within 5 s`);
  };

  const kill = async () => {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGKILL");
    await child.exited;
  };

  await spawn();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    async restart() {
      await kill();
      await spawn();
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
    command: (...args: string[]) => raw(port, args),
    signal(signal) {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** Sends one command and returns the first line of the reply (enough for PING, SET, DBSIZE ...). */
function raw(port: number, args: string[]): Promise<string> {
  const payload = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
  return new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error("redis did not reply within 1 s")), 1000);
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(socket) {
          socket.write(payload);
        },
        data(socket, chunk) {
          buffer += chunk.toString();
          const end = buffer.indexOf("\r\n");
          if (end >= 0) {
            clearTimeout(timer);
            resolve(buffer.slice(0, end));
            socket.end();
          }
        },
        error(_socket, error) {
          clearTimeout(timer);
          reject(error);
        },
        connectError(_socket, error) {
          clearTimeout(timer);
          reject(error);
        },
        close() {
          clearTimeout(timer);
          reject(new Error("connection closed before a reply"));
        },
      },
    }).catch((error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Subscribes to `channel` on the Redis at `url` (a cluster: one of its nodes; PUBLISH reaches them all). */
export async function hearChannel(url: string, channel: string): Promise<Hearing> {
  const subscriber = createConnection(url.split(",")[0]!, { name: "hear-channel" });
  await connectWithin(subscriber, 2000);
  const heard: string[] = [];
  subscriber.on("message", (from: string, message: string) => {
    if (from === channel) heard.push(message);
  });
  await subscriber.subscribe(channel);
  return {
    async messages(count) {
      for (let i = 0; i < 200 && heard.length < count; i++) await Bun.sleep(10);
      return heard.slice(0, count);
    },
    stop: () => closeConnection(subscriber),
  };
}
