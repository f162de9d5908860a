/**
 * The SDK as browsers get it: `GET /client.js` (bundled by the server with Bun.build, no CDN),
 * imported by a page in Chromium that authenticates with its HttpOnly cookie only, and reacting
 * to the browser's `offline`/`online` events.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { chromium, type Browser } from "playwright-core";
import { TestClient } from "./support/client.ts";
import { session, startServer, type TestServer } from "./support/server.ts";

let server: TestServer;
let browser: Browser | undefined;

beforeAll(async () => {
  server = await startServer();
}, 20_000);
afterAll(async () => {
  await browser?.close();
  server?.kill();
});

describe("GET /client.js", () => {
  test("serves the SDK as one ES module, without zod, revalidated by ETag", async () => {
    const res = await fetch(`${server.url}/client.js`);
    const code = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const etag = res.headers.get("etag");
    expect(etag).toMatch(/^"[0-9a-z]+"$/);
    expect(code).toContain("createClient");
    expect(code).not.toContain("zod");
    expect(code.length).toBeLessThan(40_000);
    console.log(`/client.js: ${code.length} bytes`);

    const again = await fetch(`${server.url}/client.js`, { headers: { "If-None-Match": etag! } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");

    // The bundle is a working module: import it and use it against the server.
    const file = `${tmpdir()}/switchboard-client-${process.pid}.js`;
    await Bun.write(file, code);
    try {
      const sdk = (await import(file)) as typeof import("../src/client/index.ts");
      const s = await session(server, "alice");
      const client = sdk.createClient({
        url: server.wsUrl,
        network: null,
        createWebSocket: (url) => new WebSocket(url, { headers: { Cookie: s.cookie } } as unknown as string[]),
      });
      try {
        const got: unknown[] = [];
        await client.subscribe("room:bundle", (m) => got.push(m.data));
        await client.publish("room:bundle", "from the bundle");
        for (let i = 0; i < 100 && got.length === 0; i++) await Bun.sleep(10);
        expect(got).toEqual(["from the bundle"]);
      } finally {
        client.close();
      }
    } finally {
      await Bun.file(file).delete();
    }
  }, 15_000);
});

describe("in a browser", () => {
  test("connects by cookie, and the offline/online events drop and restore the link at once", async () => {
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/healthz`);
    const loggedIn = await page.evaluate(async () => {
      const res = await fetch("/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: "alice", password: "alice-password" }),
      });
      return res.status;
    });
    expect(loggedIn).toBe(200);
    expect(await page.evaluate(() => document.cookie)).toBe(""); // HttpOnly: the page cannot read it

    // Default URL (/ws on the page's origin), cookie auth, window's online/offline events.
    // random() = 0.99: a reconnect after `offline` would wait ~9.9 s; only `online` can make it prompt.
    await page.evaluate(async () => {
      const { createClient } = await import("/client.js" as string);
      const w = window as unknown as Record<string, unknown>;
      const log: string[] = [];
      const got: unknown[] = [];
      const client = createClient({ reconnect: { baseMs: 10_000, capMs: 10_000 }, random: () => 0.99 });
      for (const name of ["open", "closed", "reconnecting"]) client.on(name, () => log.push(`${name}@${Date.now()}`));
      await client.subscribe("room:browser", (m: { data: unknown }) => got.push(m.data));
      Object.assign(w, { client, log, got });
    });
    const watcher = await TestClient.connect(server.wsUrl, { cookie: (await session(server, "bob")).cookie });
    try {
      await watcher.subscribe("room:browser");
      await page.evaluate(() => (window as any).client.publish("room:browser", "hello from chromium"));
      const [msg] = await watcher.waitMessages("room:browser", 1);
      expect(msg).toMatchObject({ from: "alice", data: "hello from chromium" });

      await context.setOffline(true);
      await page.waitForFunction(() => (window as any).client.state === "reconnecting", null, { timeout: 3000 });
      await context.setOffline(false);
      const onlineAt = Date.now();
      await page.waitForFunction(() => (window as any).client.state === "open", null, { timeout: 3000 });
      const reopenedMs = Date.now() - onlineAt;
      console.log(`online → open in ${reopenedMs} ms (the backoff alone would wait ~9900 ms)`);
      expect(reopenedMs).toBeLessThan(3000);
      const log: string[] = await page.evaluate(() => (window as any).log);
      expect(log.map((l) => l.split("@")[0])).toEqual(["open", "closed", "reconnecting", "open"]);

      await watcher.publish("room:browser", "after the network came back");
      await page.waitForFunction(() => (window as any).got.length === 2, null, { timeout: 3000 });
      expect(await page.evaluate(() => (window as any).got)).toEqual(["hello from chromium", "after the network came back"]);
      await page.evaluate(() => (window as any).client.close());
    } finally {
      watcher.terminate();
      await context.close();
    }
  }, 30_000);
});
