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

/**
 * What one pass over a raw text found outside its strings (`scanJson`): nesting deeper than
 * MAX_DEPTH (refused before parsing), or a number literal JSON.parse may turn into ±Infinity, which
 * JSON.stringify writes as `null` (a publication of `1e999` reached subscribers as `null`).
 */
export const Scanned = { ok: 0, tooDeep: 1, mayOverflow: 2 } as const;
export type Scanned = (typeof Scanned)[keyof typeof Scanned];

/**
 * One cheap pass, no allocation. A literal may overflow when its exponent has three digits or more
 * (`1e999`, `9.9E+308`) or it has 200 digits in a row (with an exponent of at most 99 it overflows
 * only past ~210); only then is the parsed value walked (`outOfRange`). Folded into the nesting
 * pass every frame and body already took: a native regex for the same costed 40–170 ns per small
 * frame and 2.5–34 µs per 4 KB of text or numbers on top of it (measured in round fourteen, branch hb14).
 */
export function scanJson(raw: string): Scanned {
  let depth = 0;
  let inString = false;
  let digits = 0;
  let found: Scanned = Scanned.ok;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
      continue;
    }
    if (c >= 48 && c <= 57) {
      if (++digits === 200) found = Scanned.mayOverflow;
      continue;
    }
    if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > MAX_DEPTH) return Scanned.tooDeep;
    } else if (c === 93 || c === 125) depth--;
    else if ((c === 101 || c === 69) && digits > 0 && bigExponent(raw, i + 1)) found = Scanned.mayOverflow;
    digits = 0;
  }
  return found;
}

/** Whether an exponent starting at `at` (after its `e`) has three digits or more; a negative one never overflows. */
function bigExponent(raw: string, at: number): boolean {
  if (raw.charCodeAt(at) === 43) at++; // "+"
  for (let i = at; i < at + 3; i++) {
    const c = raw.charCodeAt(i);
    if (!(c >= 48 && c <= 57)) return false;
  }
  return true;
}

/** True when `raw` nests deeper than MAX_DEPTH outside strings. */
export function tooDeep(raw: string): boolean {
  return scanJson(raw) === Scanned.tooDeep;
}

/** The text as JSON, or undefined when it is not JSON or nests deeper than MAX_DEPTH (`scanned`: what `scanJson` found in it). */
export function parseJson(raw: string, scanned: Scanned = scanJson(raw)): unknown {
  if (scanned === Scanned.tooDeep) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

/**
 * Where `parsed` holds a number JSON cannot represent, as the sentence a client gets
 * ("data.n: number out of range"); undefined when it holds none. `scanned`: what `scanJson` found
 * in its text; the value is walked only when that says a literal may overflow.
 */
export function outOfRange(parsed: unknown, scanned: Scanned): string | undefined {
  if (scanned !== Scanned.mayOverflow) return undefined;
  const path = nonFinitePath(parsed);
  return path === undefined ? undefined : `${path === "" ? "value" : path}: number out of range`;
}

/** The path of the first number that is not finite ("data.list.0"), "" for the value itself, or undefined. Depth is bounded by MAX_DEPTH. */
function nonFinitePath(value: unknown): string | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? undefined : "";
  if (typeof value !== "object" || value === null) return undefined;
  for (const [key, item] of Object.entries(value)) {
    const below = nonFinitePath(item);
    if (below !== undefined) return below === "" ? key : `${key}.${below}`;
  }
  return undefined;
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
