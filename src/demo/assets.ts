/**
 * The demo page's script and stylesheet, built once per process on first use and kept in memory:
 * the script is src/demo/browser/main.ts (with the SDK) bundled by Bun.build for browsers, no CDN
 * and no build step at deploy. Each asset carries an ETag of its content; the page's asset URLs
 * carry a version made of both, so a new deploy is never mixed with a cached old asset.
 */
const ENTRY = new URL("./browser/main.ts", import.meta.url).pathname;
const STYLESHEET = new URL("./demo.css", import.meta.url).pathname;

export interface Asset {
  body: string;
  etag: string;
  type: string;
}

export interface DemoAssets {
  script: Asset;
  stylesheet: Asset;
  /** Changes whenever either asset does. */
  version: string;
}

function asset(body: string, type: string): Asset {
  return { body, type, etag: `"${Bun.hash(body).toString(36)}"` };
}

/** Builds both assets. Throws with the bundler's messages when the script does not build. */
export async function buildDemoAssets(minify = true): Promise<DemoAssets> {
  const [result, css] = await Promise.all([
    Bun.build({ entrypoints: [ENTRY], target: "browser", format: "esm", minify, sourcemap: "none" }),
    Bun.file(STYLESHEET).text(),
  ]);
  const output = result.outputs[0];
  if (!result.success || !output) throw new Error(`demo bundle failed: ${result.logs.map(String).join("; ")}`);
  const script = asset(await output.text(), "text/javascript; charset=utf-8");
  const stylesheet = asset(css, "text/css; charset=utf-8");
  return { script, stylesheet, version: Bun.hash(script.etag + stylesheet.etag).toString(36) };
}

/** `buildDemoAssets` once; a failed build is retried on the next call. */
export function cachedDemoAssets(minify = true): () => Promise<DemoAssets> {
  let pending: Promise<DemoAssets> | null = null;
  return () => {
    pending ??= buildDemoAssets(minify).catch((error: unknown) => {
      pending = null;
      throw error;
    });
    return pending;
  };
}
