/**
 * Lists the functions of src/ longer than a bound (default 60 lines), longest first, and the files
 * past a bound (default 300 lines) — issue 11's "no function over ~60 lines, no file over ~300".
 * A quick check, not a test: `bun scripts/long-functions.ts [maxFunctionLines] [maxFileLines]`.
 *
 * No TypeScript parser is at hand (typescript 7 ships no compiler API), so it reads the source
 * lexically: strings, template literals, comments and regular expressions are blanked, then every
 * `{` that opens a function body (after `=>`, or after a parameter list `(…)` with an optional
 * return type, not after `if`/`for`/`while`/`switch`/`catch`) is matched with its `}`. Nested
 * functions are counted on their own and inside their parent. Test files are skipped. Page
 * templates (markup as one template literal) are listed but marked: issue 11 leaves them whole.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = join(import.meta.dir, "..");
const SRC = join(ROOT, "src");
const maxFunction = Number(process.argv[2] ?? 60);
const maxFile = Number(process.argv[3] ?? 300);
/** Files whose long functions are page templates. */
const TEMPLATES = new Set(["src/demo/page.ts"]);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.tsx?$/.test(name) && !/\.test\.tsx?$/.test(name) ? [path] : [];
  });
}

/** Where a `/` starts a regular expression rather than a division: after these characters or words. */
const REGEX_AFTER = /(?:[(,=:[!&|?{};+\-*%<>~^]|\breturn|\btypeof|\bcase|^)\s*$/;

/** The source with every string, template, comment and regex body replaced by spaces (newlines kept). */
export function blank(text: string): string {
  const out = text.split("");
  const wipe = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== "\n") out[k] = " ";
  };
  /** Open template literals: the brace depth at which each `${` started. */
  const templates: number[] = [];
  let depth = 0;
  let i = 0;
  const skipTemplate = (start: number): number => {
    // From just after a backtick or a closing `}` of `${`: up to the next `${` or closing backtick.
    let j = start;
    while (j < text.length) {
      if (text[j] === "\\") j += 2;
      else if (text[j] === "`") {
        wipe(start, j);
        return j + 1;
      } else if (text[j] === "$" && text[j + 1] === "{") {
        wipe(start, j);
        templates.push(depth);
        depth += 1;
        return j + 2;
      } else j += 1;
    }
    wipe(start, j);
    return j;
  };
  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === "/" && next === "/") {
      const end = text.indexOf("\n", i);
      const stop = end === -1 ? text.length : end;
      wipe(i, stop);
      i = stop;
    } else if (c === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2);
      const stop = end === -1 ? text.length : end + 2;
      wipe(i, stop);
      i = stop;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== c && text[j] !== "\n") j += text[j] === "\\" ? 2 : 1;
      wipe(i + 1, j);
      i = j + 1;
    } else if (c === "`") {
      i = skipTemplate(i + 1);
    } else if (c === "/" && REGEX_AFTER.test(text.slice(Math.max(0, i - 12), i))) {
      let j = i + 1;
      let inClass = false;
      while (j < text.length && text[j] !== "\n" && (inClass || text[j] !== "/")) {
        if (text[j] === "\\") j += 1;
        else if (text[j] === "[") inClass = true;
        else if (text[j] === "]") inClass = false;
        j += 1;
      }
      wipe(i + 1, j);
      i = j + 1;
    } else if (c === "{") {
      depth += 1;
      i += 1;
    } else if (c === "}") {
      depth -= 1;
      if (templates.length > 0 && templates[templates.length - 1] === depth) {
        templates.pop();
        i = skipTemplate(i + 1);
      } else i += 1;
    } else i += 1;
  }
  return out.join("");
}

const CONTROL = /\b(?:if|for|while|switch|catch|with)\s*$/;

/** Where the function whose body the `{` at `at` opens starts (its parameter list), or -1 when it opens none. */
function functionStart(code: string, at: number): number {
  const before = code.slice(0, at).trimEnd();
  if (before.endsWith("=>")) return at;
  // Skip a return type: back to the `)` of the parameter list at the same nesting.
  let j = before.length - 1;
  let angle = 0;
  while (j >= 0) {
    const c = before[j]!;
    if (c === ">") angle += 1;
    else if (c === "<") angle -= 1;
    else if (c === ")" && angle === 0) break;
    else if ((c === ";" || c === "{" || c === "}" || c === "=") && angle === 0) return -1;
    j -= 1;
  }
  if (j < 0) return -1;
  const between = before.slice(j + 1).trim();
  if (between !== "" && !between.startsWith(":")) return -1;
  // The matching `(`, then what precedes it.
  let parens = 0;
  let k = j;
  for (; k >= 0; k--) {
    if (before[k] === ")") parens += 1;
    else if (before[k] === "(") {
      parens -= 1;
      if (parens === 0) break;
    }
  }
  return k >= 0 && !CONTROL.test(before.slice(0, k)) ? k : -1;
}

interface Found {
  file: string;
  line: number;
  lines: number;
  name: string;
}

function lineOf(code: string, at: number): number {
  let n = 1;
  for (let i = 0; i < at; i++) if (code[i] === "\n") n += 1;
  return n;
}

function functionsOf(file: string): Found[] {
  const text = readFileSync(file, "utf8");
  const code = blank(text);
  const lines = text.split("\n");
  const found: Found[] = [];
  const stack: number[] = [];
  for (let i = 0; i < code.length; i++) {
    if (code[i] === "{") stack.push(functionStart(code, i));
    else if (code[i] === "}") {
      const start = stack.pop();
      if (start === undefined || start < 0) continue;
      const first = lineOf(code, start);
      const end = lineOf(code, i);
      found.push({ file: relative(ROOT, file), line: first, lines: end - first + 1, name: (lines[first - 1] ?? "").trim().slice(0, 90) });
    }
  }
  return found;
}

const files = sourceFiles(SRC).sort();
const longFiles = files
  .map((file) => ({ file: relative(ROOT, file), lines: readFileSync(file, "utf8").trimEnd().split("\n").length }))
  .filter((f) => f.lines > maxFile)
  .sort((a, b) => b.lines - a.lines);
const longFunctions = files
  .flatMap(functionsOf)
  .filter((f) => f.lines > maxFunction)
  .sort((a, b) => b.lines - a.lines);

console.log(`files over ${maxFile} lines: ${longFiles.length}`);
for (const f of longFiles) console.log(`  ${String(f.lines).padStart(4)}  ${f.file}`);
console.log(`functions over ${maxFunction} lines: ${longFunctions.length}`);
for (const f of longFunctions) console.log(`  ${String(f.lines).padStart(4)}  ${f.file}:${f.line}  ${f.name}${TEMPLATES.has(f.file) ? "  (page template)" : ""}`);
