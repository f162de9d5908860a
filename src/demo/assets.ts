/**
 * The demo page's script (src/demo/browser/main.ts with the SDK, bundled for browsers) and
 * stylesheet, built once per process on first use (see http/assets.ts). The page's asset URLs
 * carry a version made of both ETags, so a new deploy is never mixed with a cached old asset.
 */
import { CSS, asset, bundle, once, type Asset } from "../http/assets.ts";

const ENTRY = new URL("./browser/main.ts", import.meta.url).pathname;
const STYLESHEET = new URL("./demo.css", import.meta.url).pathname;

export interface DemoAssets {
  script: Asset;
  stylesheet: Asset;
  /** Changes whenever either asset does. */
  version: string;
}

/** Builds both assets. Throws with the bundler's messages when the script does not build. */
export async function buildDemoAssets(minify = true): Promise<DemoAssets> {
  const [script, css] = await Promise.all([bundle(ENTRY, minify), Bun.file(STYLESHEET).text()]);
  const stylesheet = asset(css, CSS);
  return { script, stylesheet, version: Bun.hash(script.etag + stylesheet.etag).toString(36) };
}

/** `buildDemoAssets` once; a failed build is retried on the next call. */
export function cachedDemoAssets(minify = true): () => Promise<DemoAssets> {
  return once(() => buildDemoAssets(minify));
}
