/**
 * The import graph of src/ has no cycle. Every import counts — static, dynamic `import(...)`,
 * re-exports, and type-only ones too: a type-only cycle costs nothing at run time, but it still
 * ties two modules together (neither can be read, moved or tested without the other), which is
 * what this test is for.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = resolve(import.meta.dir, "../src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.tsx?$/.test(name) && !/\.test\.tsx?$/.test(name) ? [path] : [];
  });
}

/** Module specifiers of `import … from`, `export … from`, `import "x"` and `import("x")`. */
const SPECIFIERS = [/\b(?:import|export)\s[^;'"]*?\bfrom\s*["']([^"']+)["']/g, /\bimport\s*["']([^"']+)["']/g, /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g];

/** The files of src/ a file imports (relative specifiers only; packages are not part of the graph). */
export function importsOf(file: string, text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const found = new Set<string>();
  for (const pattern of SPECIFIERS) {
    for (const match of code.matchAll(pattern)) {
      const spec = match[1]!;
      if (spec.startsWith(".")) found.add(resolve(dirname(file), spec));
    }
  }
  return [...found];
}

/** Every cycle's files, as a readable chain `a.ts → b.ts → a.ts`; one per strongly connected set. */
export function findCycles(graph: Map<string, string[]>): string[] {
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, "open");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === "open") cycles.push([...stack.slice(stack.indexOf(next)), next].map((f) => relative(SRC, f)).join(" → "));
      else if (state.get(next) === undefined) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of [...graph.keys()].sort()) if (state.get(node) === undefined) visit(node);
  return cycles;
}

describe("src/ import graph", () => {
  const graph = new Map(sourceFiles(SRC).map((file) => [file, importsOf(file, readFileSync(file, "utf8"))]));

  test("reads the imports of every kind (the check below is not vacuous)", () => {
    const gateway = graph.get(join(SRC, "gateway/gateway.ts"))!;
    expect(gateway).toContain(join(SRC, "gateway/hub.ts"));
    expect(graph.size).toBeGreaterThan(40);
    const sample = `import type { A } from "./a.ts";\nexport { b } from "../b.ts";\nimport "./c.ts";\nconst d = await import("./d.ts");\n// import "./e.ts";`;
    expect(importsOf("/x/y/f.ts", sample).sort()).toEqual(["/x/y/a.ts", "/x/b.ts", "/x/y/c.ts", "/x/y/d.ts"].sort());
    const a = "/s/a.ts", b = "/s/b.ts", c = "/s/c.ts";
    expect(findCycles(new Map([[a, [b]], [b, [c]], [c, [a]]])).length).toBe(1);
  });

  test("has no cycle", () => {
    expect(findCycles(graph)).toEqual([]);
  });
});
