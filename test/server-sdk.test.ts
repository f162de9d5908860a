/**
 * The server SDK (`switchboard/server`, SPEC §6) as a backend uses it: the built package
 * (dist/, made by `bun install`) against a running server, from Bun and from Node 20 (a child
 * `node` process with no TypeScript toolchain), and its declarations from a strict TypeScript
 * consumer without Bun's types.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jwtVerify } from "jose";
import { SwitchboardApi, SwitchboardApiError, WebhookVerificationError, signToken, verifyWebhook } from "switchboard/server";
import { signatureHeader } from "../src/auth/signature.ts";
import { TestClient, closeAll } from "./support/client.ts";
import { TEST_API_KEY, killAllServers, startServer, type TestServer } from "./support/server.ts";

const ROOT = new URL("..", import.meta.url).pathname;
let S: TestServer;
let api: SwitchboardApi;
const clients = new Set<TestClient>();
const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  S = await startServer({ HISTORY_SIZE: "10" });
  api = new SwitchboardApi({ url: `${S.url}/`, apiKey: TEST_API_KEY, timeoutMs: 5000 });
});
afterAll(async () => {
  await closeAll(clients);
  expect(S.faults()).toEqual([]);
  await S.stop();
  killAllServers();
});

test("the package export resolves to built JavaScript and declarations", async () => {
  const pkg = await Bun.file(`${ROOT}package.json`).json();
  expect(pkg.exports["./server"]).toEqual({ types: "./dist/server/types/server-sdk/index.d.ts", default: "./dist/server/index.js" });
  expect(await Bun.file(`${ROOT}dist/server/index.js`).exists()).toBe(true);
  expect(Bun.resolveSync("switchboard/server", ROOT)).toBe(`${ROOT}dist/server/index.js`);
  const tsc = Bun.spawnSync([`${ROOT}node_modules/.bin/tsc`, "-p", `${ROOT}test/fixtures/sdk-consumer/tsconfig.json`], { cwd: ROOT });
  expect(tsc.stdout.toString() + tsc.stderr.toString()).toBe("");
  expect(tsc.exitCode).toBe(0);
});

test("the packed package (what a git or tarball dependency installs) carries the built SDK, and Node imports it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sb-pack-"));
  try {
    // --ignore-scripts: pack the dist/ this checkout built, as npm does for a dependency after `prepare`.
    const pack = Bun.spawnSync(["npm", "pack", "--ignore-scripts", "--pack-destination", dir], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    expect(pack.exitCode).toBe(0);
    const tarball = join(dir, pack.stdout.toString().trim().split("\n").pop()!);
    const consumer = join(dir, "backend");
    mkdirSync(join(consumer, "node_modules/switchboard"), { recursive: true });
    const untar = Bun.spawnSync(["tar", "-xzf", tarball, "-C", join(consumer, "node_modules/switchboard"), "--strip-components=1"]);
    expect(untar.exitCode).toBe(0);
    // The SDK's one dependency, as npm would install it beside the package.
    symlinkSync(join(ROOT, "node_modules/jose"), join(consumer, "node_modules/jose"));
    writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "backend", type: "module" }));
    const pkg = await Bun.file(join(consumer, "node_modules/switchboard/package.json")).json();
    for (const file of Object.values(pkg.exports["./server"]) as string[]) {
      expect(await Bun.file(join(consumer, "node_modules/switchboard", file)).exists()).toBe(true);
    }
    const script = 'const m = await import("switchboard/server"); console.log(Object.keys(m).sort().join(","));';
    const node = Bun.spawnSync(["node", "--input-type=module", "-e", script], { cwd: consumer, stdout: "pipe", stderr: "pipe" });
    expect(node.stderr.toString()).toBe("");
    expect(node.stdout.toString().trim()).toBe("SwitchboardApi,SwitchboardApiError,WebhookVerificationError,signToken,verifyWebhook");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("SwitchboardApi from Bun", () => {
  test("every call returns the server's answer", async () => {
    const topic = unique("room:sdk");
    const token = await api.createToken({ user: { id: "sdk-user", name: "SDK" }, ttlS: 60 });
    expect(token.expiresIn).toBe(60);
    const client = new TestClient(S.wsUrl);
    clients.add(client);
    await client.waitOpen();
    client.send({ type: "auth", token: token.token });
    await client.welcome();

    expect(await api.subscribe({ user: "sdk-user", topic })).toEqual({ sockets: 1 });
    expect(await client.nextType("subscribed")).toMatchObject({ topic, seq: 0 });
    const published = await api.publish({ topic, data: { n: 1 } });
    expect(published).toEqual({ topic, seq: 1, epoch: expect.any(String) });
    expect((await client.waitMessages(topic, 1))[0]!.data).toEqual({ n: 1 });
    const broadcast = await api.broadcast({ topics: [topic, "nons:x"], data: { n: 2 } });
    expect(broadcast.results).toEqual([
      { topic, seq: 2, epoch: published.epoch },
      { topic: "nons:x", error: { code: "forbidden", message: expect.any(String) } },
    ]);
    const history = await api.history(topic, { since: 1, epoch: published.epoch });
    expect(history).toMatchObject({ topic, seq: 2, recovered: true });
    expect(history.messages.map((m) => m.data)).toEqual([{ n: 2 }]);
    expect((await api.history(topic, { limit: 1 })).messages.map((m) => m.seq)).toEqual([2]);
    expect(await api.presence(topic)).toEqual({ topic, members: [{ user: { id: "sdk-user", name: "SDK" }, connections: 1 }] });
    expect(await api.presenceStats(topic)).toEqual({ topic, users: 1, connections: 1 });
    let topics = await api.topics({ prefix: topic });
    for (let i = 0; i < 30 && topics.topics.length === 0; i++) {
      await Bun.sleep(100);
      topics = await api.topics({ prefix: topic });
    }
    expect(topics).toEqual({ topics: [{ topic, subscribers: 1 }] });
    expect((await api.info()).instances.map((i) => i.id)).toEqual(["test-instance"]);
    expect(await api.unsubscribe({ user: "sdk-user", topic })).toEqual({ sockets: 1 });
    expect(await client.nextType("unsubscribed")).toEqual({ type: "unsubscribed", topic, reason: "server" });
    const ticket = await api.createTicket({ user: { id: "sdk-user", name: "SDK" } });
    expect(ticket).toEqual({ ticket: expect.any(String), expiresIn: 30 });
    expect(await api.disconnect({ user: "sdk-user" })).toEqual({ sockets: 1 });
    expect((await client.waitClose()).code).toBe(4003);
  });

  test("a refusal throws SwitchboardApiError with the server's status, code and message", async () => {
    const wrong = new SwitchboardApi({ url: S.url, apiKey: "wrong-key-0123456789abcdef" });
    const refused = await wrong.info().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SwitchboardApiError);
    expect({ ...(refused as SwitchboardApiError) }).toMatchObject({ status: 401, code: "unauthorized" });
    expect((refused as Error).message).toBe("missing or wrong API key");
    const bad = (await api.broadcast({ topics: [], data: 1 }).catch((e: unknown) => e)) as SwitchboardApiError;
    expect([bad.status, bad.code]).toEqual([400, "bad_request"]);
    const tooLong = (await api.createToken({ user: { id: "u", name: "U" }, ttlS: 90_000 }).catch((e: unknown) => e)) as SwitchboardApiError;
    expect([tooLong.status, tooLong.code]).toEqual([400, "bad_request"]);
  });

  test("no answer: status 0 with code network, or timeout after timeoutMs", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const slow = new SwitchboardApi({ url: `http://127.0.0.1:${silent.port}`, apiKey: "k", timeoutMs: 200 });
      const started = Date.now();
      const timedOut = (await slow.info().catch((e: unknown) => e)) as SwitchboardApiError;
      expect([timedOut.status, timedOut.code]).toEqual([0, "timeout"]);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      silent.stop(true);
    }
    const closedPort = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = closedPort.port;
    closedPort.stop(true);
    const down = (await new SwitchboardApi({ url: `http://127.0.0.1:${port}`, apiKey: "k" }).info().catch((e: unknown) => e)) as SwitchboardApiError;
    expect([down.status, down.code]).toEqual([0, "network"]);
    expect(() => new SwitchboardApi({ url: "ftp://x", apiKey: "k" })).toThrow("url must be an http");
    expect(() => new SwitchboardApi({ url: S.url, apiKey: "" })).toThrow("apiKey is required");
  });
});

describe("signToken and verifyWebhook", () => {
  const secret = "app-jwt-secret-0123456789abcdef-0123";

  test("signToken: HS256 with sub, name, caps, iat and exp = iat + ttlS; refuses a short secret", async () => {
    const jwt = await signToken({ user: { id: "auth0|42", name: "Ana" }, caps: { "doc:*": ["subscribe", "history"] }, ttlS: 120, issuer: "app", audience: "rt" }, secret);
    const { payload, protectedHeader } = await jwtVerify(jwt, new TextEncoder().encode(secret), { issuer: "app", audience: "rt" });
    expect(protectedHeader.alg).toBe("HS256");
    expect(payload).toMatchObject({ sub: "auth0|42", name: "Ana", caps: { "doc:*": ["subscribe", "history"] } });
    expect(payload.exp! - payload.iat!).toBe(120);
    expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(5);
    await expect(signToken({ user: { id: "u" }, ttlS: 60 }, "short")).rejects.toThrow("at least 32 bytes");
    await expect(signToken({ user: { id: "u" }, ttlS: 0 }, secret)).rejects.toThrow("ttlS");
  });

  test("a token from signToken opens a socket on a server with AUTH_JWT_SECRET; disconnect with revoke refuses it afterwards", async () => {
    const app = await startServer({ AUTH_JWT_SECRET: secret });
    try {
      const sb = new SwitchboardApi({ url: app.url, apiKey: TEST_API_KEY });
      const user = { id: `auth0|${unique("app")}`, name: "App User" };
      const jwt = await signToken({ user, ttlS: 60 }, secret);
      const first = new TestClient(app.wsUrl);
      clients.add(first);
      await first.waitOpen();
      first.send({ type: "auth", token: jwt });
      expect((await first.welcome()).user).toEqual(user);
      expect(await sb.disconnect({ user: user.id, revoke: true })).toEqual({ sockets: 1 });
      expect((await first.waitClose()).code).toBe(4003);
      const again = new TestClient(app.wsUrl);
      clients.add(again);
      await again.waitOpen();
      again.send({ type: "auth", token: jwt });
      expect((await again.waitClose()).code).toBe(4001);
    } finally {
      await app.stop();
    }
  });

  test("verifyWebhook: returns the event for a fresh signature; refuses a tampered body, another secret, an old t", () => {
    const event = { id: "evt_1", type: "presence.join", at: Date.now(), data: { topic: "room:a", user: { id: "u", name: "U" } } };
    const body = JSON.stringify(event);
    expect(verifyWebhook(body, signatureHeader(secret, body), secret)).toEqual(event as never);
    expect(verifyWebhook(new TextEncoder().encode(body), signatureHeader(secret, body), secret).id).toBe("evt_1");
    expect(() => verifyWebhook(body.replace("room:a", "room:b"), signatureHeader(secret, body), secret)).toThrow(WebhookVerificationError);
    expect(() => verifyWebhook(body, signatureHeader("another-secret-0123456789abcdef-01", body), secret)).toThrow("does not match");
    const old = signatureHeader(secret, body, Math.floor(Date.now() / 1000) - 301);
    expect(() => verifyWebhook(body, old, secret)).toThrow("tolerance");
    expect(verifyWebhook(body, old, secret, { toleranceS: 600 }).id).toBe("evt_1");
    expect(() => verifyWebhook(body, undefined, secret)).toThrow("missing");
    expect(() => verifyWebhook("not json", signatureHeader(secret, "not json"), secret)).toThrow("not JSON");
  });
});

test("the built package on Node 20 against the running server", async () => {
  const proc = Bun.spawn(["node", `${ROOT}test/fixtures/server-sdk-node.mjs`], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", SB_URL: S.url, SB_API_KEY: TEST_API_KEY },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  const out = JSON.parse(stdout);
  expect(out.node).toMatch(/^v(2\d|[3-9]\d)\./);
  expect(out.publish).toEqual({ topic: expect.stringMatching(/^room:node-/), seq: 1, epoch: expect.any(String) });
  expect(out.broadcast.results[0].seq).toBe(2);
  expect(out.broadcast.results[1].error.code).toBe("bad_request");
  expect(out.history.messages.map((m: { seq: number }) => m.seq)).toEqual([1, 2]);
  expect(out.presence.members).toEqual([]);
  expect(out.stats).toMatchObject({ users: 0, connections: 0 });
  for (const k of ["subscribe", "unsubscribe", "disconnect"]) expect(out[k]).toEqual({ sockets: 0 });
  expect(out.ticket).toEqual({ type: "string", expiresIn: 30 });
  expect(out.token).toEqual({ type: "string", expiresIn: 60 });
  expect(out.topics).toEqual({ topics: expect.any(Array) });
  expect(out.info).toEqual(["test-instance"]);
  expect(out.wrongKey).toEqual({ isError: true, status: 401, code: "unauthorized", message: "missing or wrong API key" });
  expect(out.forbidden).toEqual({ status: 403, code: "forbidden" });
  expect(out.signed).toMatchObject({ sub: "u1", name: "U", caps: { "room:a": ["subscribe"] } });
  expect(out.signed.exp - out.signed.iat).toBe(60);
  expect(out.webhook).toBe("evt_1");
  expect(out.tampered).toBe("WebhookVerificationError");
});
