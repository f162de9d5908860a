/**
 * Browser assets built by the server itself: TypeScript bundled with Bun.build on first use and
 * kept in memory (no CDN, no build step at deploy), served with `no-cache` plus an ETag of the
 * content, so browsers revalidate with a cheap 304 and never run a stale script after a deploy.
 */
import type { Context } from "hono";

export interface Asset {
  body: string;
  type: string;
  etag: string;
}

export const JS = "text/javascript; charset=utf-8";
export const CSS = "text/css; charset=utf-8";

export function asset(body: string, type: string): Asset {
  return { body, type, etag: `"${Bun.hash(body).toString(36)}"` };
}

/** One ES module for browsers from a TypeScript entry. Throws with the bundler's messages. */
export async function bundle(entry: string, minify: boolean): Promise<Asset> {
  const result = await Bun.build({ entrypoints: [entry], target: "browser", format: "esm", minify, sourcemap: "none" });
  const output = result.outputs[0];
  if (!result.success || !output) throw new Error(`bundling ${entry} failed: ${result.logs.map(String).join("; ")}`);
  return asset(await output.text(), JS);
}

/** `build` once, on first use; a failed build is tried again on the next call. */
export function once<T>(build: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | null = null;
  return () => {
    pending ??= build().catch((error: unknown) => {
      pending = null;
      throw error;
    });
    return pending;
  };
}

/** 200 with the asset, or 304 when the browser already holds this ETag. */
export function serveAsset(c: Context, served: Asset, headers: Record<string, string> = {}): Response {
  const all = { "Content-Type": served.type, "Cache-Control": "no-cache", ETag: served.etag, ...headers };
  const match = c.req.header("if-none-match");
  if (match !== undefined && match.split(",").some((t) => t.trim() === served.etag || t.trim() === `W/${served.etag}`)) {
    return c.body(null, 304, all);
  }
  return c.body(served.body, 200, all);
}
