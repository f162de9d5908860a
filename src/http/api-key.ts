/**
 * The server API's credential: `Authorization: Bearer $API_KEY` (auth/bearer.ts: scheme
 * case-insensitive, compared in constant time). Without API_KEY the key-only routes do not exist (404).
 */
import type { MiddlewareHandler } from "hono";
import { bearerOf, sameSecret } from "../auth/bearer.ts";
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
  const expected = config.apiKey;
  const matches = (c: Ctx): boolean => expected !== undefined && sameSecret(bearerOf(c.req.header("authorization")), expected);
  return {
    enabled: expected !== undefined,
    matches,
    required: async (c, next) => {
      if (expected === undefined) return notFound(c);
      if (!matches(c)) throw new SwitchboardError(ErrorCode.unauthorized, "missing or wrong API key");
      await next();
    },
  };
}
