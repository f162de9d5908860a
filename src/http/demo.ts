/** The demo chat page at `/` (issue: the demo chat). A strict CSP: only this origin's scripts. */
import { Hono } from "hono";
import type { Deps, Env } from "./context.ts";

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export function demoRoutes(deps: Deps): Hono<Env> {
  const app = new Hono<Env>();
  app.get("/", (c) => {
    c.header("Content-Security-Policy", CSP);
    const users = deps.config.env === "production" ? [] : deps.config.users.map((u) => `${u.name} / ${u.password}`);
    return c.html(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Switchboard</title></head>
<body><main><h1>Switchboard</h1><p>The server is running.</p>${users.length ? `<p>Demo users: ${users.map(escape).join(", ")}</p>` : ""}</main></body></html>`);
  });
  return app;
}

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
