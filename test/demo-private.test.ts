/**
 * The demo chat's private room (issue 13, SPEC §5 caps + §6 server-side subscribe) in headless
 * Chromium against two real processes sharing a redis-server, started as shipped (development,
 * demo users, no NAMESPACES; alice and carol on node-a, bob on node-b):
 * alice creates a private room and invites bob; bob's open page shows it at once and both chat;
 * carol's page never shows it and her own subscribe to it is `forbidden`; after a reload bob
 * still has it. The token a socket takes in-band is short (TOKEN_TTL_S): the page renews it on the
 * same socket when told `expiring`. `UPDATE_SCREENSHOT=1` saves the page as docs/demo-private.png.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { launchBrowser, openConversation, recordSockets, say, signInThroughForm, waitForMessage, waitForPresence, waitForState } from "./support/browser.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { PASSWORDS, startServer, type TestServer } from "./support/server.ts";

let browser: Browser;
let redis: TestRedis;
let a: TestServer;
let b: TestServer;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  [browser, redis] = await Promise.all([launchBrowser(), startRedis()]);
  [a, b] = await Promise.all([startServer({ REDIS_URL: redis.url, INSTANCE_ID: "node-a" }), startServer({ REDIS_URL: redis.url, INSTANCE_ID: "node-b" })]);
}, 30_000);
afterAll(async () => {
  await browser?.close();
  a?.kill();
  b?.kill();
  await redis?.stop();
});

async function signedIn(user: string, server: TestServer): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  contexts.push(context);
  const page = await context.newPage();
  await signInThroughForm(page, `${server.url}/`, user, PASSWORDS[user]!);
  return page;
}

/** The sidebar's private rooms (keys `private:…`). */
function privateRooms(page: Page): Promise<string[]> {
  return page.$$eval(".conv.private", (buttons) => buttons.map((b) => (b as HTMLElement).dataset.key ?? ""));
}

describe("the demo's private room", () => {
  // The two tests run side by side (test.concurrent): the second mostly waits out two token
  // lifetimes. Each closes only the browser contexts it opened.
  test.concurrent("only invited users see it, at once, and keep it after a reload; others are refused", async () => {
    const [alice, bob, carol] = await Promise.all([signedIn("alice", a), signedIn("bob", b), signedIn("carol", a)]);
    expect(await bob.textContent("#conn-instance")).toBe("node-b");
    const bobSockets: string[] = [];
    bob.on("websocket", (ws) => bobSockets.push(ws.url()));

    // alice creates the room: her open socket takes the grant in-band and joins.
    await alice.fill("#private-input", "plans");
    await alice.press("#private-input", "Enter");
    await alice.waitForSelector(".conv.private[aria-current='true']");
    const [topic] = await privateRooms(alice);
    expect(topic).toMatch(/^private:plans-[0-9a-f]{12}$/);
    expect(await alice.textContent("#conv-title")).toBe("#plans");
    await say(alice, "only for invited eyes");
    await waitForMessage(alice, "only for invited eyes");

    // alice invites bob: his open page shows the room at once, without reconnecting.
    await alice.fill("#invite-input", "bob");
    await alice.press("#invite-input", "Enter");
    await alice.locator("#invite-note", { hasText: "Invited bob" }).waitFor({ timeout: 10_000 });
    await openConversation(bob, topic!);
    await bob.locator("#messages li", { hasText: "alice invited you to #plans." }).waitFor({ timeout: 10_000 });
    // and chat both ways on the same sockets (bob's rights were refreshed in-band)
    await say(bob, "thanks, I'm in");
    await waitForMessage(bob, "thanks, I'm in");
    await waitForMessage(alice, "thanks, I'm in");
    await waitForPresence(alice, ["alice", "bob"]);
    expect(bobSockets).toEqual([]); // no new socket since the invitation
    await waitForState(bob, "open");

    if (process.env.UPDATE_SCREENSHOT === "1") {
      await say(alice, "welcome bob: this room is invisible to carol");
      await waitForMessage(alice, "welcome bob: this room is invisible to carol");
      await alice.screenshot({ path: new URL("../docs/demo-private.png", import.meta.url).pathname });
    }

    // carol never sees it, and her own subscribe is forbidden (her socket carries no grant).
    expect(await privateRooms(carol)).toEqual([]);
    const refused = await carol.evaluate(async (t) => {
      const ws = new WebSocket(`${location.origin.replace("http", "ws")}/ws`);
      const frames: { type: string; code?: string; ref?: number }[] = [];
      await new Promise<void>((resolve, reject) => {
        ws.onmessage = (e) => {
          const frame = JSON.parse(String(e.data));
          frames.push(frame);
          if (frame.type === "welcome") ws.send(JSON.stringify({ type: "subscribe", topic: t, ref: 7 }));
          if (frame.ref === 7) resolve();
        };
        ws.onerror = () => reject(new Error("socket failed"));
      });
      ws.close();
      return frames.find((f) => f.ref === 7);
    }, topic!);
    expect(refused).toMatchObject({ type: "error", code: "forbidden" });
    expect(await privateRooms(carol)).toEqual([]);

    // bob reloads: the ticket of his new connection carries the grant, the room is back.
    await bob.reload();
    await waitForState(bob, "open");
    await openConversation(bob, topic!);
    await waitForPresence(bob, ["alice", "bob"]);
    await say(alice, "still there after your reload?");
    await waitForMessage(bob, "still there after your reload?");
    await say(bob, "yes");
    await waitForMessage(alice, "yes");
    expect(await privateRooms(carol)).toEqual([]);
    for (const context of contexts) await context.close();
  }, 60_000);

  test.concurrent("the in-band token is short-lived and renewed on the same socket: still connected and writing past two lifetimes", async () => {
    const short = await startServer({ TOKEN_TTL_S: "10", INSTANCE_ID: "short-tokens" });
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const sockets = recordSockets(page);
      await signInThroughForm(page, `${short.url}/`, "alice", PASSWORDS.alice!);
      await page.fill("#private-input", "brief");
      await page.press("#private-input", "Enter");
      await page.waitForSelector(".conv.private[aria-current='true']");
      await Bun.sleep(21_000);
      await say(page, "still here");
      await waitForMessage(page, "still here");
      expect(sockets).toHaveLength(1);
      const frames = sockets[0]!.received.map((f) => JSON.parse(f) as { type: string });
      expect(frames.filter((f) => f.type === "expiring").length).toBeGreaterThanOrEqual(2);
      const refreshes = sockets[0]!.sent.filter((f) => f.includes('"refresh"')).length;
      expect(refreshes).toBeGreaterThanOrEqual(3); // the room's creation, then each expiring
      await waitForState(page, "open");
    } finally {
      await context.close();
      short.kill();
    }
  }, 45_000);
});
