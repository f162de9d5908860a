/**
 * The server API's credential: `Authorization: Bearer $API_KEY` (scheme case-insensitive),
 * compared in constant time. Without API_KEY the key-only routes do not exist (404).
 */
import { timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { Config } from "../config.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { notFound } from "./errors.ts";
import type { Ctx, Env } from "./context.ts";

export interface ApiKey {
  /** False when API_KEY is unset. */
  readonly enabled: boolean;
  /** True when the request carries the key. */
  matches(c: Ctx): boolean;
  /** Middleware: 404 without API_KEY, 401 without the right key. */
  required: MiddlewareHandler<Env>;
}

export function apiKey(config: Config): ApiKey {
  const expected = config.apiKey === undefined ? null : Buffer.from(config.apiKey);
  const matches = (c: Ctx): boolean => {
    const given = c.req.header("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
    if (expected === null || given === undefined) return false;
    const buf = Buffer.from(given);
    return buf.length === expected.length && timingSafeEqual(buf, expected);
  };
  return {
    enabled: expected !== null,
    matches,
    required: async (c, next) => {
      if (expected === null) return notFound(c);
      if (!matches(c)) throw new SwitchboardError(ErrorCode.unauthorized, "missing or wrong API key");
      await next();
    },
  };
}
