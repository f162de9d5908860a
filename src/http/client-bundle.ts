/**
 * `GET /client.js`: the client SDK (src/client/index.ts) as one ES module for browsers (see
 * assets.ts for how it is built and cached).
 *
 *   <script type="module">
 *     import { createClient } from "/client.js";
 *   </script>
 *
 * `Access-Control-Allow-Origin: *`: the file is public code, fetched without credentials, and
 * pages on ALLOWED_ORIGINS need CORS to import a module from this origin.
 */
import { Hono } from "hono";
import { bundle, once, serveAsset } from "./assets.ts";
import type { Env } from "./context.ts";

const ENTRY = new URL("../client/index.ts", import.meta.url).pathname;

export function clientBundleRoutes(options: { minify?: boolean } = {}): Hono<Env> {
  const app = new Hono<Env>();
  const sdk = once(() => bundle(ENTRY, options.minify ?? true));
  // A failed build throws → 500 {error:{code:"internal"}} through onError, logged there.
  app.get("/client.js", async (c) => serveAsset(c, await sdk(), { "Access-Control-Allow-Origin": "*" }));
  return app;
}
