/**
 * "Use your own login" in a real browser (headless Chromium): the example app (examples/app/,
 * started with its own `run.ts` as `bun run example` does) signs users in with its own HttpOnly
 * JWT cookie; its page, on another origin than Switchboard, connects with that cookie alone
 * (AUTH_COOKIE + AUTH_JWKS_URL). Also CORS with credentials on /auth/* from that origin, and
 * nothing for a foreign one.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import type { Server, Subprocess } from "bun";
import { launchBrowser, serveOtherOrigin } from "./support/browser.ts";
import { freePort, TEST_ENV } from "./support/server.ts";

let browser: Browser;
let example: Subprocess<"ignore", "pipe", "pipe">;
let output = "";
let appOrigin: string;
let sbUrl: string;
const contexts: BrowserContext[] = [];
const servers: Server<undefined>[] = [];

async function waitFor(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {}
    if (Date.now() > deadline || example.exitCode !== null) throw new Error(`${url} did not answer 200:\n${output.slice(-3000)}`);
    await Bun.sleep(50);
  }
}

beforeAll(async () => {
  const appPort = freePort();
  const sbPort = freePort();
  appOrigin = `http://127.0.0.1:${appPort}`;
  sbUrl = `http://127.0.0.1:${sbPort}`;
  const pdeath = Bun.which("setpriv") ? ["setpriv", "--pdeathsig", "KILL", "--"] : [];
  example = Bun.spawn([...pdeath, "bun", "examples/app/run.ts"], {
    cwd: new URL("..", import.meta.url).pathname,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...TEST_ENV, LOG_LEVEL: "info", EXAMPLE_HOST: "127.0.0.1", EXAMPLE_PORT: String(appPort), SWITCHBOARD_PORT: String(sbPort) },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  for (const stream of [example.stdout, example.stderr]) {
    void (async () => {
      for await (const chunk of stream) output += new TextDecoder().decode(chunk);
    })();
  }
  browser = await launchBrowser();
  await Promise.all([waitFor(`${appOrigin}/`, 15_000), waitFor(`${sbUrl}/healthz`, 15_000)]);
}, 30_000);

afterEach(async () => {
  for (const c of contexts.splice(0)) await c.close().catch(() => {});
});

afterAll(async () => {
  await browser?.close();
  for (const s of servers) s.stop(true);
  if (example && example.exitCode === null) {
    example.kill("SIGTERM");
    await Promise.race([example.exited, Bun.sleep(8000)]);
    if (example.exitCode === null) example.kill("SIGKILL");
  }
});

async function signIn(user: string): Promise<Page> {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  await page.goto(`${appOrigin}/`);
  await page.waitForSelector("#signin:not([hidden])");
  await page.fill("#username", user);
  await page.fill("#password", `${user}-password`);
  await page.press("#password", "Enter");
  await page.waitForSelector('#status[data-state="open"]', { timeout: 10_000 });
  return page;
}

describe("§4 the example app: its own login, its own cookie, Switchboard trusting it", () => {
  test("two users chat through Switchboard; the page never sees the app's cookie; a foreign origin cannot use it", async () => {
    const alice = await signIn("alice");
    expect(await alice.textContent("#status")).toBe("Connected to Switchboard as alice");
    expect(await alice.evaluate(() => document.cookie)).not.toContain("app_session");
    const bob = await signIn("bob");
    await alice.waitForFunction(() => document.getElementById("present")?.textContent?.includes("bob"), undefined, { timeout: 10_000 });

    await alice.fill("#text", "hello from alice");
    await alice.press("#text", "Enter");
    await bob.locator('#messages li[data-from="alice"]', { hasText: "hello from alice" }).waitFor({ timeout: 10_000 });

    await bob.click("#logout");
    await bob.waitForSelector('#status[data-state="signed-out"]');
    await alice.waitForFunction(() => !document.getElementById("present")?.textContent?.includes("bob"), undefined, { timeout: 10_000 });

    // A page of a foreign origin, in alice's browser (her app cookie goes along): refused at /ws.
    const foreign = serveOtherOrigin({ "/": { body: "<!doctype html><title>foreign</title>", type: "text/html" } });
    servers.push(foreign);
    const page = await alice.context().newPage();
    await page.goto(`http://127.0.0.1:${foreign.port}/`);
    const code = await page.evaluate(
      (ws) =>
        new Promise<number>((resolve) => {
          const socket = new WebSocket(ws);
          socket.onclose = (e) => resolve(e.code);
        }),
      sbUrl.replace("http", "ws") + "/ws",
    );
    expect(code).toBe(1006);
    await Bun.sleep(100);
    expect(output).toContain('"reason":"origin"');
  }, 30_000);
});

describe("the example page's member list", () => {
  const present = (page: Page) => page.evaluate(() => document.getElementById("present")?.textContent ?? "");

  test("a new sign-in on the same page starts from the room's members, not the last session's", async () => {
    const alice = await signIn("alice");
    const bob = await signIn("bob");
    await bob.waitForFunction(() => document.getElementById("present")?.textContent === "alice, bob", undefined, { timeout: 10_000 });
    await bob.click("#logout");
    await bob.waitForSelector('#status[data-state="signed-out"]');
    await alice.click("#logout");
    await alice.waitForSelector('#status[data-state="signed-out"]');
    await bob.fill("#username", "bob");
    await bob.fill("#password", "bob-password");
    await bob.press("#password", "Enter");
    await bob.waitForSelector('#status[data-state="open"]', { timeout: 10_000 });
    await bob.waitForFunction(() => document.getElementById("present")?.textContent === "bob", undefined, { timeout: 5000 }).catch(() => {});
    expect(await present(bob)).toBe("bob");
  }, 30_000);

  test("a page back from offline shows who is there now", async () => {
    const alice = await signIn("alice");
    const bob = await signIn("bob");
    await alice.waitForFunction(() => document.getElementById("present")?.textContent === "alice, bob", undefined, { timeout: 10_000 });
    await alice.context().setOffline(true);
    await alice.waitForSelector('#status[data-state="connecting"]', { timeout: 10_000 });
    await bob.click("#logout");
    await bob.waitForSelector('#status[data-state="signed-out"]');
    await Bun.sleep(500);
    await alice.context().setOffline(false);
    await alice.waitForSelector('#status[data-state="open"]', { timeout: 10_000 });
    await alice.waitForFunction(() => document.getElementById("present")?.textContent === "alice", undefined, { timeout: 5000 }).catch(() => {});
    expect(await present(alice)).toBe("alice");
  }, 30_000);
});

describe("§4 CORS with credentials on /auth/* in a browser", () => {
  test("the app's origin (in ALLOWED_ORIGINS) reads /auth answers with credentials; a foreign origin cannot", async () => {
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${appOrigin}/`);
    const fromApp = await page.evaluate(async (sb) => {
      const login = await fetch(`${sb}/auth/login`, {
        method: "POST",
        credentials: "include",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: "carol", password: "carol-password" }),
      });
      const ticket = await fetch(`${sb}/auth/ticket`, { method: "POST", credentials: "include" });
      return { login: login.status, user: (await login.json()).user.id, ticket: ticket.status, hasTicket: typeof (await ticket.json()).ticket === "string" };
    }, sbUrl);
    expect(fromApp).toEqual({ login: 200, user: "carol", ticket: 200, hasTicket: true });

    const foreign = serveOtherOrigin({ "/": { body: "<!doctype html><title>foreign</title>", type: "text/html" } });
    servers.push(foreign);
    const other = await context.newPage();
    await other.goto(`http://127.0.0.1:${foreign.port}/`);
    const fromForeign = await other.evaluate(async (sb) => {
      try {
        await fetch(`${sb}/auth/me`, { credentials: "include" });
        return "read";
      } catch (error) {
        return String((error as Error).name);
      }
    }, sbUrl);
    expect(fromForeign).toBe("TypeError");
  }, 20_000);
});
