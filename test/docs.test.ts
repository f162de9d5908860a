/**
 * The documentation names only what exists: every `src/…`, `test/…`, `bench/…` or `examples/…`
 * path written in README.md, docs/*.md or test/README.md is a file or folder of the repository,
 * so is a `.ts` file named by its path inside src/ (`gateway/hub.ts`), some file has each bare
 * `name.ts` of a code span, and every relative link of those files resolves. test/README.md (the SPEC → tests map) lists
 * every test file.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const ROOT = join(import.meta.dir, "..");

/** The Markdown files whose paths are checked, relative to the root. */
function documents(): string[] {
  const docs = readdirSync(join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`);
  return ["README.md", "test/README.md", ...docs];
}

/**
 * Repository paths named in `text`: a token that starts with one of the top folders (not preceded
 * by a letter, `.`, `/` or `-`, so `../src/x` in a link and `my-src/x` do not count), made of
 * path characters, without trailing punctuation. Globs and placeholders (`*`, `<…>`) are skipped.
 */
function namedPaths(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/(?<![\w./-])(?:src|test|bench|examples)\/[\w./@*<>-]*/g)) {
    const path = m[0].replace(/[.]+$/, "");
    if (/[*<>]/.test(path)) continue;
    found.add(path);
  }
  return [...found];
}

/** The folders of src/: a doc may name `gateway/hub.ts` for `src/gateway/hub.ts`. */
const SRC_FOLDERS = readdirSync(join(ROOT, "src"), { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name);

/** `.ts` files named by their path inside src/ (`gateway/hub.ts`), as `src/…` paths. */
function srcRelativePaths(text: string): string[] {
  const found = new Set<string>();
  const folders = SRC_FOLDERS.join("|");
  for (const m of text.matchAll(new RegExp(`(?<![\\w./-])(?:${folders})/[\\w./-]*\\.ts\\b`, "g"))) found.add(`src/${m[0]}`);
  return [...found];
}

/** Bare file names in code spans (`` `cluster.ts` ``): some file of the repository has that name. */
function bareFileNames(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/`([\w.-]+\.(?:ts|lua))`/g)) found.add(m[1]!);
  return [...found];
}

/** Targets of relative Markdown links (`[text](target)`), without their `#fragment`. */
function linkTargets(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1]!.split("#")[0]!;
    if (target === "" || /^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // a fragment alone, or a URL
    found.add(target);
  }
  return [...found];
}

/** Every file under `dir` (relative to the root, "" for all of it), skipping dependencies and dot folders. */
function allFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
    const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...allFiles(path));
    else out.push(path);
  }
  return out;
}

/** Every `*.test.ts` under `dir` (relative to the root, "" for all of it), skipping dependencies and dot folders. */
function testFiles(dir: string): string[] {
  return allFiles(dir).filter((f) => f.endsWith(".test.ts"));
}

describe("paths named in the documentation", () => {
  test("finds paths in prose, code and links, and skips globs, placeholders and other prefixes", () => {
    expect(namedPaths("see `src/gateway/hub.ts`, test/drain/ and [x](../bench/run.ts). Also src/a.ts.")).toEqual([
      "src/gateway/hub.ts",
      "test/drain/",
      "src/a.ts",
    ]);
    expect(namedPaths("test/*.test.ts, src/<folder>/x.ts, my-src/x.ts, ./test/y.ts")).toEqual([]);
    expect(linkTargets("[a](redis.md) [b](https://x.dev/a) [c](#frames) [d](../src/client/index.ts#L3)")).toEqual(["redis.md", "../src/client/index.ts"]);
    expect(srcRelativePaths("gateway/hub.ts (not src/gateway/x.ts, not my-gateway/y.ts), broker/lua/")).toEqual(["src/gateway/hub.ts"]);
    expect(bareFileNames("`cluster.ts` runs `bun src/server.ts`; `publish.lua` and `x.md`")).toEqual(["cluster.ts", "publish.lua"]);
  });

  const names = new Set(allFiles("").map((f) => f.split("/").at(-1)!));
  for (const doc of documents()) {
    test(`${doc} names only files and folders that exist`, async () => {
      const text = await Bun.file(join(ROOT, doc)).text();
      const missing = [...namedPaths(text), ...srcRelativePaths(text)].filter((p) => !existsSync(join(ROOT, p)));
      missing.push(...bareFileNames(text).filter((name) => !names.has(name)));
      const broken = linkTargets(text)
        .map((t) => relative(ROOT, join(ROOT, dirname(doc), t)))
        .filter((p) => !existsSync(join(ROOT, p)));
      expect({ doc, missing, broken }).toEqual({ doc, missing: [], broken: [] });
    });
  }
});

describe("test/README.md, the SPEC → tests map", () => {
  test("lists every test file of the repository by its path", async () => {
    const index = await Bun.file(join(ROOT, "test/README.md")).text();
    const listed = new Set(namedPaths(index));
    const files = testFiles("").sort();
    expect(files.length).toBeGreaterThan(10);
    expect(files.filter((f) => !listed.has(f))).toEqual([]);
  });

  test("has a heading for each section of the SPEC, §0 to §8", async () => {
    const index = await Bun.file(join(ROOT, "test/README.md")).text();
    for (let n = 0; n <= 8; n++) expect(index).toMatch(new RegExp(`^## §${n} `, "m"));
    for (const sub of ["Checks before the upgrade", "Frames", "Topics and permissions", "Delivery", "Limits and membership", "Close codes"]) {
      expect(index).toContain(`### ${sub}`);
    }
  });
});
