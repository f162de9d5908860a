/**
 * The cookie flow and the demo chat in a real browser (headless Chromium via playwright-core):
 * what page JavaScript can see of the session, which requests carry it, what a page of another
 * origin can do with it, and how a tab rides out the loss of its server.
 *
 * One deployment for the whole file: a redis-server, two Switchboard processes sharing it
 * (instances node-a and node-b) and a round-robin TCP proxy in front of both. One browser; each
 * test uses its own contexts (cookie jars). The process-kill test runs last: it kills one node.
 *
 * `UPDATE_SCREENSHOT=1 bun test test/browser.test.ts` also rewrites docs/demo.png.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Browser, BrowserContext } from "playwright-core";
import type { Server } from "bun";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { apiPublish, PASSWORDS, startServer, type TestServer } from "./support/server.ts";
import { startProxy, type TcpProxy } from "./support/proxy.ts";
import { metric } from "./support/metrics.ts";
import {
  launchBrowser,
  openConversation,
  recordSockets,
  say,
  serveOtherOrigin,
  shownMessages,
  signInThroughForm,
  waitForMessage,
  waitForPresence,
  waitForState,
} from "./support/browser.ts";

let browser: Browser;
let redis: TestRedis;
let a: TestServer;
let b: TestServer;
let proxy: TcpProxy;
const contexts: BrowserContext[] = [];
const servers: Server<undefined>[] = [];

async function newContext(): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 640 } });
  contexts.push(context);
  return context;
}

/** Polls `cond` every 20 ms; fails naming `what` after `timeoutMs`. */
async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}

beforeAll(async () => {
  [browser, redis] = await Promise.all([launchBrowser(), startRedis()]);
  const env = { REDIS_URL: redis.url, PRESENCE_LEASE_MS: "2000" };
  [a, b] = await Promise.all([startServer({ ...env, INSTANCE_ID: "node-a" }), startServer({ ...env, INSTANCE_ID: "node-b" })]);
  proxy = await startProxy({ upstreams: [a.port, b.port] });
}, 30_000);

afterEach(async () => {
  for (const c of contexts.splice(0)) await c.close().catch(() => {});
});

afterAll(async () => {
  for (const c of contexts.splice(0)) await c.close().catch(() => {});
  await browser?.close();
  for (const s of servers) s.stop(true);
  await proxy?.close();
  a?.kill();
  b?.kill();
  await redis?.stop();
});

describe("signing in through the demo's form", () => {
  test("sets an HttpOnly cookie that page JavaScript cannot read, and the socket's ticket is bought with it", async () => {
    const context = await newContext();
    const page = await context.newPage();
    const sockets = recordSockets(page);
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push(m.text());
    });
    const ticketSocketsBefore = await metric(a, "switchboard_connections_opened_total", { auth: "ticket" });

    await signInThroughForm(page, `${a.url}/`, "alice", PASSWORDS.alice!);

    const cookie = (await context.cookies(a.url)).find((c) => c.name === "sb_session");
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Lax", path: "/", secure: false });
    expect(cookie!.value.length).toBeGreaterThan(20);
    expect(await page.evaluate(() => document.cookie)).toBe("");
    expect(await page.textContent("#me-name")).toBe("alice");

    // The demo as shipped offers private rooms, so its socket opens with a ticket carrying the
    // user's grants (src/http/demo-private.ts), which only the HttpOnly cookie could buy; no token
    // is sent. (A page connecting with the cookie alone: test/client-browser.test.ts.)
    expect(sockets).toHaveLength(1);
    expect(sockets[0]!.url).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:${a.port}/ws\\?ticket=[A-Za-z0-9_-]{20,}$`));
    expect(sockets[0]!.sent.some((f) => f.includes('"auth"'))).toBe(false);
    const welcome = sockets[0]!.received.map((f) => JSON.parse(f)).find((f) => f.type === "welcome");
    expect(welcome).toMatchObject({ type: "welcome", user: { id: "alice" }, instance: "node-a" });
    expect(await metric(a, "switchboard_connections_opened_total", { auth: "ticket" })).toBe(ticketSocketsBefore + 1);
    // The page works under its strict CSP: nothing was refused, no script error.
    expect(problems).toEqual([]);
  }, 20_000);
});

describe("two users on two processes sharing Redis", () => {
  test("see each other in the room's presence, chat in the room, exchange direct messages, and see a leave", async () => {
    const [alice, bob] = await Promise.all([(await newContext()).newPage(), (await newContext()).newPage()]);
    await Promise.all([signInThroughForm(alice, `${a.url}/`, "alice", PASSWORDS.alice!), signInThroughForm(bob, `${b.url}/`, "bob", PASSWORDS.bob!)]);
    expect(await alice.textContent("#conn-instance")).toBe("node-a");
    expect(await bob.textContent("#conn-instance")).toBe("node-b");

    // Both start in #lobby.
    await Promise.all([waitForPresence(alice, ["alice", "bob"]), waitForPresence(bob, ["alice", "bob"])]);

    await say(alice, "Hi Bob, the build is green.");
    await waitForMessage(bob, "Hi Bob, the build is green.");
    await say(bob, "Great, shipping it to Fly now.");
    await waitForMessage(alice, "Great, shipping it to Fly now.");
    for (const page of [alice, bob]) {
      expect((await shownMessages(page)).map((m) => `${m.from}: ${m.text}`)).toEqual([
        "alice: Hi Bob, the build is green.",
        "bob: Great, shipping it to Fly now.",
      ]);
    }

    // Bob writes to Alice directly: a publish to her inbox user:alice, delivered on the other node.
    await bob.fill("#dm-input", "alice");
    await bob.press("#dm-input", "Enter");
    await say(bob, "Psst, this one is just for you.");
    await openConversation(alice, "dm:bob");
    await waitForMessage(alice, "Psst, this one is just for you.");
    await say(alice, "Got it, thanks!");
    await waitForMessage(bob, "Got it, thanks!");
    expect((await shownMessages(bob)).map((m) => `${m.from}: ${m.text}`)).toEqual(["bob: Psst, this one is just for you.", "alice: Got it, thanks!"]);
    expect((await shownMessages(alice)).map((m) => `${m.from}: ${m.text}`)).toEqual(["bob: Psst, this one is just for you.", "alice: Got it, thanks!"]);

    await openConversation(alice, "room:lobby");
    if (process.env.UPDATE_SCREENSHOT) {
      await alice.setViewportSize({ width: 1100, height: 560 });
      await alice.screenshot({ path: new URL("../docs/demo.png", import.meta.url).pathname });
    }

    // Bob leaves the room: Alice, on the other node, sees him go.
    await openConversation(bob, "room:lobby");
    await bob.click("#leave-room");
    await waitForPresence(alice, ["alice"]);
    await alice.locator("#messages li.sys", { hasText: "bob left." }).waitFor({ timeout: 5000 });
    expect(await alice.locator("#messages li.sys", { hasText: "bob left." }).count()).toBe(1);
    expect(await bob.locator('.conv[data-key="room:lobby"]').count()).toBe(0);
  }, 30_000);
});

describe("signing out", () => {
  test("closes that tab's socket, shows it signed out, and ends the session's other tabs on the other node", async () => {
    const context = await newContext();
    const [tab1, tab2] = [await context.newPage(), await context.newPage()];
    const sockets1 = recordSockets(tab1);
    const sockets2 = recordSockets(tab2);
    await signInThroughForm(tab1, `${a.url}/`, "carol", PASSWORDS.carol!);
    // Cookies are per host, not per port: the second tab, on node-b, is in the same session.
    await tab2.goto(`${b.url}/`);
    await waitForState(tab2, "open");
    expect(await tab2.textContent("#me-name")).toBe("carol");

    await tab1.click("#sign-out");
    await waitForState(tab1, "signed-out");
    expect(await tab1.isVisible("#signin-form")).toBe(true);
    expect(await tab1.isVisible("#chat-view")).toBe(false);
    expect(await tab1.textContent("#signin-notice")).toContain("You signed out");
    expect(sockets1.length).toBe(1);
    await until(() => sockets1[0]!.closed, 2000, "tab 1's socket to close");
    expect((await context.cookies(a.url)).some((c) => c.name === "sb_session")).toBe(false);

    // The session was revoked everywhere: node-b closed the other tab's socket with 4001.
    await waitForState(tab2, "signed-out");
    expect(await tab2.textContent("#signin-notice")).toContain("session ended");
    await until(() => sockets2.every((s) => s.closed), 2000, "tab 2's socket to close");
  }, 20_000);
});

describe("a page of another origin", () => {
  test("cannot open an authenticated socket with the browser's session cookie (403 at the upgrade)", async () => {
    const context = await newContext();
    const own = await context.newPage();
    await signInThroughForm(own, `${a.url}/`, "alice", PASSWORDS.alice!);

    // Another port of the same host: same site, so the browser attaches the session cookie.
    const evil = serveOtherOrigin({
      "/": { type: "text/html", body: `<!doctype html><title>elsewhere</title><script src="/probe.js"></script>` },
      "/probe.js": {
        type: "text/javascript",
        body: `window.probe = (url) => new Promise((resolve) => {
          const ws = new WebSocket(url); const frames = []; let opened = false;
          ws.onopen = () => { opened = true; };
          ws.onmessage = (e) => frames.push(String(e.data));
          ws.onclose = (e) => resolve({ opened, code: e.code, frames });
        });`,
      },
    });
    servers.push(evil);
    const elsewhere = `http://127.0.0.1:${evil.port}`;
    expect((await context.cookies(elsewhere)).some((c) => c.name === "sb_session")).toBe(true);

    const page = await context.newPage();
    const consoleLines: string[] = [];
    page.on("console", (m) => consoleLines.push(m.text()));
    await page.goto(`${elsewhere}/`);
    const refusedBefore = await metric(a, "switchboard_upgrades_rejected_total", { reason: "origin" });
    const result = await page.evaluate((url) => (window as unknown as { probe(u: string): Promise<unknown> }).probe(url), a.wsUrl);

    expect(result).toEqual({ opened: false, code: 1006, frames: [] });
    expect(await metric(a, "switchboard_upgrades_rejected_total", { reason: "origin" })).toBe(refusedBefore + 1);
    expect(consoleLines.some((l) => l.includes("403"))).toBe(true);
    // The same browser's own-origin tab is still connected: the cookie is valid, only the origin was refused.
    expect(await own.getAttribute("#status", "data-state")).toBe("open");
  }, 20_000);
});

describe("the tab's process is killed", () => {
  test("the tab reconnects through the proxy to the other node and the conversation has no gap or duplicate", async () => {
    const page = await (await newContext()).newPage();
    await signInThroughForm(page, proxy.url("/", "http"), "bob", PASSWORDS.bob!);
    await page.fill("#join-input", "failover");
    await page.press("#join-input", "Enter");
    await page.waitForSelector('.conv[data-key="room:failover"][aria-current="true"]');
    await page.waitForSelector(".conv[data-key='room:failover']:not(:has(.conv-note))");
    const instance = await page.textContent("#conn-instance");
    const [victim, survivor] = instance === "node-a" ? [a, b] : [b, a];
    const publish = async (text: string) => {
      const res = await apiPublish(survivor, { topic: "room:failover", data: { text } });
      expect(res.status).toBe(202);
    };

    for (let i = 1; i <= 5; i++) await publish(`m${i}`);
    await waitForMessage(page, "m5");

    victim.kill(); // SIGKILL: no drain, no close frame
    for (let i = 6; i <= 10; i++) await publish(`m${i}`); // while the tab is away
    await say(page, "sent while reconnecting"); // queued by the SDK, published once it is back
    await waitForState(page, "recovered", 15_000);
    expect(await page.textContent("#conn-instance")).toBe(survivor === a ? "node-a" : "node-b");
    for (let i = 11; i <= 15; i++) await publish(`m${i}`);
    await waitForMessage(page, "m15");
    await waitForMessage(page, "sent while reconnecting");

    const shown = await shownMessages(page);
    expect(shown.filter((m) => m.from === "server").map((m) => m.text)).toEqual(Array.from({ length: 15 }, (_, i) => `m${i + 1}`));
    expect(shown.filter((m) => m.text === "sent while reconnecting")).toHaveLength(1);
    // Every publication on the topic once, in order: seq 1..16 without a gap.
    expect(shown.map((m) => Number(m.seq))).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(await page.locator("#messages li.sys-warn").count()).toBe(0); // no "messages may be missing"
  }, 30_000);
});
