/**
 * Every HTTP error is JSON `{error:{code,message}}`; nothing else (no stack, no zod dump) leaves.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ZodType } from "zod";
import { ErrorCode, SwitchboardError, httpStatus } from "../protocol/codes.ts";
import type { Logger } from "../log.ts";
import { errorFields } from "../log.ts";
import { describeZod, outOfRange, parseJson, scanJson, whyNotJson } from "../protocol/parse.ts";

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

export function errorResponse(c: Context, error: SwitchboardError): Response {
  if (error.retryAfter !== undefined) c.header("Retry-After", String(error.retryAfter));
  return c.json(errorBody(error.code, error.message), httpStatus[error.code] as 400);
}

/** Hono `onError`: coded errors as they are, Hono's own as their status, the rest as 500. */
export function onError(log: Logger) {
  return (error: Error, c: Context): Response => {
    if (error instanceof SwitchboardError) {
      if (error.code === ErrorCode.internal) log.error("request failed", { path: c.req.path, ...errorFields(error.cause ?? error) });
      return errorResponse(c, error);
    }
    if (error instanceof HTTPException) {
      const status = error.status;
      const code = status === 400 ? ErrorCode.badRequest : status === 401 ? ErrorCode.unauthorized : status === 403 ? ErrorCode.forbidden : status === 404 ? ErrorCode.notFound : status === 413 ? ErrorCode.tooLarge : ErrorCode.internal;
      return c.json(errorBody(code, code === ErrorCode.internal ? "internal error" : error.message), status);
    }
    log.error("request failed", { path: c.req.path, ...errorFields(error) });
    return c.json(errorBody(ErrorCode.internal, "internal error"), 500);
  };
}

export function notFound(c: Context): Response {
  return c.json(errorBody(ErrorCode.notFound, "no such route"), 404);
}

/**
 * Hono's fallback: a path that exists with another method is 405 with `Allow` (HEAD goes with
 * GET), anything else 404. The methods come from the app's own route table, so they cannot drift;
 * `hidden` paths (a disabled API) stay 404 whatever the method.
 */
export function routeNotFound(routes: readonly { method: string; path: string }[], hidden: readonly string[] = []) {
  return (c: Context): Response => {
    const path = c.req.path;
    const allow = new Set<string>();
    for (const route of routes) {
      if (route.method !== "ALL" && !hidden.includes(route.path) && samePath(route.path, path)) allow.add(route.method);
    }
    if (allow.size === 0) return notFound(c);
    if (allow.has("GET")) allow.add("HEAD");
    c.header("Allow", [...allow].join(", "));
    return c.json(errorBody(ErrorCode.badRequest, `${c.req.method} is not allowed here; use ${[...allow].join(" or ")}`), 405);
  };
}

/** A route pattern (`/a/:param`) against a request path, segment by segment; `*` matches the rest. */
function samePath(pattern: string, path: string): boolean {
  const want = pattern.split("/");
  const got = path.split("/");
  for (let i = 0; i < want.length; i++) {
    if (want[i] === "*") return true;
    if (got[i] === undefined) return false;
    if (want[i]!.startsWith(":") ? got[i] === "" : want[i] !== got[i]) return false;
  }
  return want.length === got.length;
}

/**
 * Parses a JSON body against a schema. Not JSON, nested deeper than frames may be, holding a number
 * JSON cannot represent (`1e999`), or not of the schema: a `bad_request` with one sentence.
 */
export async function jsonBody<T>(c: Context, schema: ZodType<T>): Promise<T> {
  const text = await c.req.text();
  const scanned = scanJson(text);
  const raw = parseJson(text, scanned);
  if (raw === undefined) throw new SwitchboardError(ErrorCode.badRequest, whyNotJson(text, "body"));
  const huge = outOfRange(raw, scanned);
  if (huge !== undefined) throw new SwitchboardError(ErrorCode.badRequest, huge);
  const result = schema.safeParse(raw);
  if (!result.success) throw new SwitchboardError(ErrorCode.badRequest, describeZod(result.error, "invalid body"));
  return result.data;
}
