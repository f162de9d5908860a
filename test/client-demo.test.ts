/**
 * The demo chat (built on the SDK) under the backend's control, in headless Chromium against a
 * real server (SPEC §6): a room the server API subscribes the user to appears in the sidebar and
 * receives messages, a removal is said in the room, and `POST /api/disconnect` (4003) leaves the
 * page disconnected without reconnecting.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Browser } from "playwright-core";
import { launchBrowser, openConversation, recordSockets, signInThroughForm, waitForMessage, waitForState } from "./support/browser.ts";
import { apiPublish, PASSWORDS, postJson, startServer, TEST_API_KEY, type TestServer } from "./support/server.ts";

let browser: Browser;
let server: TestServer;

beforeAll(async () => {
  [browser, server] = await Promise.all([launchBrowser(), startServer()]);
}, 30_000);
afterAll(async () => {
  await browser?.close();
  server?.kill();
});

async function api(path: string, body: unknown): Promise<number> {
  const res = await postJson(server, path, body, { Authorization: `Bearer ${TEST_API_KEY}` });
  await res.body?.cancel();
  return res.status;
}

describe("the demo under the server API", () => {
  test("subscribe shows the room, unsubscribe says so, disconnect (4003) stops the page", async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const sockets = recordSockets(page);
      await signInThroughForm(page, `${server.url}/`, "carol", PASSWORDS.carol!);
      const topic = `room:vip-${Date.now().toString(36)}`;

      expect(await api("/api/subscribe", { user: "carol", topic })).toBe(200);
      await openConversation(page, topic);
      expect(await apiPublish(server, { topic, data: { text: "welcome to the vip room", id: "m1" } })).toMatchObject({ status: 202 });
      await waitForMessage(page, "welcome to the vip room");

      expect(await api("/api/unsubscribe", { user: "carol", topic })).toBe(200);
      await page.locator("#messages li", { hasText: `You were removed from #${topic.slice(5)}.` }).waitFor({ timeout: 10_000 });

      expect(await api("/api/disconnect", { user: "carol" })).toBe(200);
      await waitForState(page, "closed");
      expect(await page.textContent("#status-text")).toBe("Disconnected by the server");
      await Bun.sleep(1500);
      expect(sockets.length).toBe(1); // no reconnect
      await waitForState(page, "closed");
    } finally {
      await context.close();
    }
  }, 30_000);
});
