/**
 * The demo chat at `/` (src/demo/), its script `/demo/app.js` and stylesheet `/demo/app.css`.
 * A strict CSP: only this origin's scripts, styles and sockets; no inline script or style
 * anywhere (the page is static markup, the script is a file). The demo users are listed only
 * outside production.
 */
import { Hono } from "hono";
import { cachedDemoAssets } from "../demo/assets.ts";
import { serveAsset } from "./assets.ts";
import { renderPage } from "../demo/page.ts";
import type { Deps, Env } from "./context.ts";

export const DEMO_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export function demoRoutes(deps: Deps): Hono<Env> {
  const app = new Hono<Env>();
  const assets = cachedDemoAssets();
  // The HTML differs only by config; render it once per asset version.
  let page: { version: string; html: string } | null = null;

  app.get("/", async (c) => {
    const { version } = await assets();
    if (page?.version !== version) {
      const demoUsers = deps.config.nodeEnv === "production" ? [] : deps.config.users;
      page = { version, html: renderPage({ demoUsers, version, privateRooms: deps.config.demo }) };
    }
    c.header("Content-Security-Policy", DEMO_CSP);
    c.header("Cache-Control", "no-cache");
    return c.html(page.html);
  });
  app.get("/demo/app.js", async (c) => serveAsset(c, (await assets()).script));
  app.get("/demo/app.css", async (c) => serveAsset(c, (await assets()).stylesheet));
  return app;
}
