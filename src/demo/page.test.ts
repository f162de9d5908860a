/**
 * The demo page as HTTP (SPEC §2 `GET /`): a strict CSP, no inline script or style, demo users
 * listed from the config outside production only, and the assets it references served.
 */
import { describe, expect, test } from "bun:test";
import { demoRoutes, DEMO_CSP } from "../http/demo.ts";
import type { Deps } from "../http/context.ts";
import { escapeHtml, renderPage } from "./page.ts";

const USERS = [
  { name: "alice", password: "alice-password" },
  { name: "bob", password: "b<o>b&\"pw'" },
];

function routes(env: "development" | "production" | "test") {
  return demoRoutes({ config: { nodeEnv: env, users: USERS } } as unknown as Deps);
}

describe("GET /", () => {
  test("serves the page under a CSP that allows only this origin's scripts, styles and sockets", async () => {
    const res = await routes("development").request("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toBe(DEMO_CSP);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self';");
    expect(csp).toContain("style-src 'self';");
    expect(csp).not.toContain("unsafe");
    const html = await res.text();
    // No inline script or style: every <script> has a src, no <style>, no style= attribute.
    expect(html.match(/<script\b[^>]*>/g)).toEqual([expect.stringMatching(/^<script type="module" src="\/demo\/app\.js\?v=[a-z0-9]+">$/)]);
    expect(html).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=/i);
    // Without the script a submit must not put the password in a URL.
    expect(html).toMatch(/<form id="signin-form"[^>]* method="post"/);
  }, 20_000);

  test("lists the configured demo users in development, escaped", async () => {
    const html = await (await routes("development").request("/")).text();
    expect(html).toContain('data-username="alice" data-password="alice-password"');
    expect(html).toContain(`data-password="${escapeHtml(USERS[1]!.password)}"`);
    expect(html).not.toContain(USERS[1]!.password);
  }, 20_000);

  test("lists no user and no password in production", async () => {
    const html = await (await routes("production").request("/")).text();
    expect(html).not.toContain("Demo users");
    expect(html).not.toContain("password:");
    for (const u of USERS) expect(html).not.toContain(u.password);
    expect(html).toContain('id="signin-form"');
  }, 20_000);
});

describe("the page's assets", () => {
  test("script and stylesheet are served with their types and revalidate with an ETag", async () => {
    const app = routes("development");
    const html = await (await app.request("/")).text();
    for (const [path, type] of [
      ["/demo/app.js", "text/javascript"],
      ["/demo/app.css", "text/css"],
    ] as const) {
      expect(html).toContain(`${path}?v=`);
      const res = await app.request(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain(type);
      expect(res.headers.get("cache-control")).toBe("no-cache");
      const etag = res.headers.get("etag")!;
      expect((await res.text()).length).toBeGreaterThan(1000);
      const again = await app.request(path, { headers: { "If-None-Match": etag } });
      expect(again.status).toBe(304);
    }
  }, 20_000);

  test("the script bundles the SDK and the page logic, with no import left for the browser to resolve", async () => {
    const js = await (await routes("development").request("/demo/app.js")).text();
    expect(js).not.toMatch(/\bimport\s*[{*"']|\bimport\(/);
    expect(js).toContain("/auth/me");
    expect(js).toContain("/auth/logout");
  }, 20_000);
});

describe("renderPage", () => {
  test("escapes what it interpolates", () => {
    const html = renderPage({ demoUsers: [{ name: "<x>", password: "\"'&" }], version: "1" });
    expect(html).not.toContain("<x>");
    expect(html).toContain("&#60;x&#62;");
  });
});
