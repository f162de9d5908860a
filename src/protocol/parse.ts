/**
 * Untrusted JSON in, one sentence out: shared by WebSocket frames and HTTP bodies, so both refuse
 * the same things the same way. Pure; no I/O.
 */
import type { ZodError } from "zod";

/**
 * Deepest `[`/`{` nesting a frame or body may have. JSON.parse of a 64 KB frame of brackets costs
 * ~1000× a flat one (and its GC more): a few sockets at the rate limit stalled every other client
 * for seconds, and a 50,000-deep `/api/publish` body overflowed the stack when serialized. No SPEC
 * frame needs more than a few levels; `data` gets the rest.
 */
export const MAX_DEPTH = 32;

/** True when `raw` nests deeper than MAX_DEPTH outside strings: one cheap pass, no allocation. */
export function tooDeep(raw: string): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > MAX_DEPTH) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

/** The text as JSON, or undefined when it is not JSON or nests deeper than MAX_DEPTH. */
export function parseJson(raw: string): unknown {
  if (tooDeep(raw)) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

/** Why `parseJson` refused `raw`, as the sentence a client gets. */
export function whyNotJson(raw: string, what: "frame" | "body"): string {
  if (tooDeep(raw)) return `${what} nests deeper than ${MAX_DEPTH} levels`;
  return what === "frame" ? "frame is not valid JSON" : "body must be JSON";
}

/** One sentence from a zod error: which field, and what is wrong with it — never the issue list. */
export function describeZod(error: ZodError, fallback: string): string {
  const issue = error.issues[0];
  if (issue === undefined) return fallback;
  const path = issue.path.map(String).join(".");
  return path === "" ? issue.message : `${path}: ${issue.message}`;
}
