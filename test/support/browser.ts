/**
 * Headless Chromium for the browser tests, through playwright-core and Debian's /usr/bin/chromium
 * (installed by .ci/run; a browser is never downloaded). Each launch gets a fresh temporary
 * profile from Playwright, removed when the browser closes.
 *
 * Also: helpers that drive the demo page (src/demo) the way a user does, and a tiny server of
 * another origin for cross-site tests.
 */
import { chromium, type Browser, type Page, type WebSocket as PageSocket } from "playwright-core";
import type { Server } from "bun";

export const CHROMIUM = "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** Launches Chromium, or fails with one line saying how to install it. */
export async function launchBrowser(): Promise<Browser> {
  if (!(await Bun.file(CHROMIUM).exists())) {
    throw new Error(`${CHROMIUM} is missing: run \`apt-get install -y chromium\` (or bash .ci/run)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 20_000 });
}

/** The demo's connection states (`#status[data-state]`, src/demo/browser/status.ts). */
export type DemoState = "connecting" | "open" | "reconnecting" | "recovered" | "resync" | "closed" | "signed-out";

export async function waitForState(page: Page, state: DemoState | DemoState[], timeout = 10_000): Promise<void> {
  const states = Array.isArray(state) ? state : [state];
  await page.waitForSelector(states.map((s) => `#status[data-state="${s}"]`).join(", "), { timeout });
}

/**
 * Opens the demo at `url` and signs in through the form (typing, pressing Enter); resolves once
 * the page says it is connected. Returns the page's WebSocket as Playwright saw it.
 */
export async function signInThroughForm(page: Page, url: string, user: string, password: string): Promise<PageSocket> {
  await page.goto(url);
  await page.waitForSelector("#signin-view:not([hidden])");
  const socket = page.waitForEvent("websocket", { timeout: 10_000 });
  await page.fill("#username", user);
  await page.fill("#password", password);
  await page.press("#password", "Enter");
  await waitForState(page, "open");
  return socket;
}

/** The shown conversation's messages as `{from, text, seq}` (pending sends excluded). */
export function shownMessages(page: Page): Promise<{ from: string; text: string; seq: string | null }[]> {
  return page.$$eval("#messages li.msg:not(.pending)", (items) =>
    items.map((li) => ({
      from: (li as HTMLElement).dataset.from ?? "",
      text: li.querySelector(".text")?.textContent ?? "",
      seq: (li as HTMLElement).dataset.seq ?? null,
    })),
  );
}

/** Types `text` into the composer and presses Enter. */
export async function say(page: Page, text: string): Promise<void> {
  await page.fill("#composer-input", text);
  await page.press("#composer-input", "Enter");
}

/** Waits until the shown conversation has a message with exactly `text`. */
export async function waitForMessage(page: Page, text: string, timeout = 10_000): Promise<void> {
  await page.locator("#messages li.msg:not(.pending) .text", { hasText: text }).first().waitFor({ timeout });
}

/** Selects a conversation in the sidebar by its key (`room:lobby`, `dm:bob`). */
export async function openConversation(page: Page, key: string, timeout = 10_000): Promise<void> {
  const button = page.locator(`.conv[data-key="${key}"]`);
  await button.waitFor({ timeout });
  await button.click();
  await page.waitForSelector(`.conv[data-key="${key}"][aria-current="true"]`, { timeout });
}

/** User ids in the shown room's presence list. */
export function presentUsers(page: Page): Promise<string[]> {
  return page.$$eval("#presence-list li[data-user]", (items) => items.map((li) => (li as HTMLElement).dataset.user ?? "").sort());
}

/** A server on another origin (127.0.0.1, another port) answering `routes` by path. */
export function serveOtherOrigin(routes: Record<string, { body: string; type: string }>): Server<undefined> {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const route = routes[new URL(req.url).pathname];
      return route ? new Response(route.body, { headers: { "Content-Type": route.type } }) : new Response("not found", { status: 404 });
    },
  });
}

/** What a page's WebSockets did, as Chromium reported it (frames as text). */
export interface SocketLog {
  url: string;
  sent: string[];
  received: string[];
  closed: boolean;
}

/** Records every WebSocket `page` opens from now on (attach before the page connects). */
export function recordSockets(page: Page): SocketLog[] {
  const logs: SocketLog[] = [];
  page.on("websocket", (ws) => {
    const log: SocketLog = { url: ws.url(), sent: [], received: [], closed: false };
    logs.push(log);
    ws.on("framesent", (f) => log.sent.push(String(f.payload)));
    ws.on("framereceived", (f) => log.received.push(String(f.payload)));
    ws.on("close", () => (log.closed = true));
  });
  return logs;
}

/** Waits until the shown room lists exactly `users` (ids) as present. */
export async function waitForPresence(page: Page, users: string[], timeout = 10_000): Promise<void> {
  const want = [...users].sort().join(",");
  await page.waitForFunction(
    (expected) =>
      [...document.querySelectorAll<HTMLElement>("#presence-list li[data-user]")]
        .map((li) => li.dataset.user ?? "")
        .sort()
        .join(",") === expected,
    want,
    { timeout },
  );
}
