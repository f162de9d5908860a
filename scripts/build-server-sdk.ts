/**
 * Builds `switchboard/server` (SPEC §6) into dist/server/: index.js (ESM for Node 20+ and Bun,
 * jose and node:crypto left as imports) and the declarations under types/. Run by `prepare`,
 * so `bun install` leaves a usable package; dist/ is git-ignored.
 */
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const out = join(root, "dist/server");
rmSync(out, { recursive: true, force: true });

const built = await Bun.build({
  entrypoints: [join(root, "src/server-sdk/index.ts")],
  outdir: out,
  target: "node",
  format: "esm",
  external: ["jose"],
  naming: "index.js",
});
if (!built.success) {
  for (const log of built.logs) console.error(log);
  process.exit(1);
}

const tsc = Bun.spawnSync([join(root, "node_modules/.bin/tsc"), "-p", join(root, "tsconfig.server-sdk.json")], { cwd: root, stdout: "inherit", stderr: "inherit" });
if (tsc.exitCode !== 0) process.exit(tsc.exitCode ?? 1);

// Declarations keep the sources' `./x.ts` specifiers; a consumer resolves `./x.js` to `x.d.ts`.
function rewrite(dir: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) rewrite(path);
    else if (name.endsWith(".d.ts")) writeFileSync(path, readFileSync(path, "utf8").replace(/(from\s+["']\.{1,2}\/[^"']*)\.ts(["'])/g, "$1.js$2"));
  }
}
rewrite(join(out, "types"));
console.log("built dist/server (switchboard/server)");
