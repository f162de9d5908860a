/**
 * `GET /client.js`: the client SDK (src/client/index.ts) as one ES module for browsers, bundled
 * with Bun.build on the first request and kept in memory (no CDN, no build step at deploy).
 *
 *   <script type="module">
 *     import { createClient } from "/client.js";
 *   </script>
 *
 * Caching: `no-cache` plus an ETag of the content, so browsers revalidate (a cheap 304) and never
 * run a stale SDK against a newer server after a deploy. `Access-Control-Allow-Origin: *`: the
 * file is public code, fetched without credentials, and pages on ALLOWED_ORIGINS need CORS to
 * import a module from this origin.
 */
import { Hono } from "hono";
import type { Env } from "./context.ts";

const ENTRY = new URL("../client/index.ts", import.meta.url).pathname;

export interface ClientBundle {
  code: string;
  etag: string;
}

/** Bundles the SDK for browsers. Throws with the bundler's messages when it fails. */
export async function buildClientBundle(minify = true): Promise<ClientBundle> {
  const result = await Bun.build({ entrypoints: [ENTRY], target: "browser", format: "esm", minify, sourcemap: "none" });
  const output = result.outputs[0];
  if (!result.success || !output) throw new Error(`client bundle failed: ${result.logs.map(String).join("; ")}`);
  const code = await output.text();
  return { code, etag: `"${Bun.hash(code).toString(36)}"` };
}

export function clientBundleRoutes(options: { minify?: boolean } = {}): Hono<Env> {
  const app = new Hono<Env>();
  let bundle: Promise<ClientBundle> | null = null;
  app.get("/client.js", async (c) => {
    bundle ??= buildClientBundle(options.minify ?? true);
    let built: ClientBundle;
    try {
      built = await bundle;
    } catch (error) {
      bundle = null; // try again on the next request
      throw error; // → 500 {error:{code:"internal"}} through onError, logged there
    }
    const headers = {
      "Content-Type": "text/javascript; charset=utf-8",
      "Cache-Control": "no-cache",
      ETag: built.etag,
      "Access-Control-Allow-Origin": "*",
    };
    const match = c.req.header("if-none-match");
    if (match !== undefined && match.split(",").some((t) => t.trim() === built.etag || t.trim() === `W/${built.etag}`)) {
      return c.body(null, 304, headers);
    }
    return c.body(built.code, 200, headers);
  });
  return app;
}
