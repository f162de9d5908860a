/** Small readers of untrusted client frames, before and besides the zod schema. */
import type { ZodError } from "zod";
import { describeZod, outOfRange, scanJson, whyNotJson, type Scanned } from "../protocol/parse.ts";
import { ClientFrame } from "../protocol/frames.ts";
import { wellFormedPublish } from "../protocol/publish-check.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The client's correlation number, when the frame has a usable one. */
export function refOf(parsed: unknown): number | undefined {
  if (!isObject(parsed)) return undefined;
  const ref = parsed.ref;
  return typeof ref === "number" && Number.isSafeInteger(ref) && ref >= 0 ? ref : undefined;
}

/** One short sentence from a zod error; a wrong or missing `type` is "unknown frame type". */
export function describeFrameError(error: ZodError): string {
  const issue = error.issues[0];
  const path = issue?.path.map(String).join(".");
  if (issue !== undefined && (issue.code === "invalid_union" || (path === "type" && issue.code !== "invalid_type"))) {
    return "unknown frame type";
  }
  return describeZod(error, "invalid frame");
}

/** A frame (`parsed` from `raw`, in which `scanJson` found `scanned`) checked against the schema, or the `bad_request` that answers it. */
export function validateFrame(raw: string, parsed: unknown, scanned: Scanned = scanJson(raw)): { frame: ClientFrame } | { error: SwitchboardError } {
  const huge = outOfRange(parsed, scanned);
  if (huge !== undefined) return { error: new SwitchboardError(ErrorCode.badRequest, huge) };
  const publish = wellFormedPublish(parsed);
  if (publish !== undefined) return { frame: publish };
  const result = parsed === undefined ? null : ClientFrame.safeParse(parsed);
  if (result !== null && result.success) return { frame: result.data };
  const why = result === null ? whyNotJson(raw, "frame") : describeFrameError(result.error);
  return { error: new SwitchboardError(ErrorCode.badRequest, why) };
}

/**
 * The `error` frame for a failed frame: a coded error as it is, anything else as `internal`
 * (logged, never shown). `log` is called for what deserves an operator's look.
 */
export function errorFrame(ref: number | undefined, error: unknown, log: (cause: unknown) => void): Record<string, unknown> {
  if (error instanceof SwitchboardError) {
    if (error.code === ErrorCode.internal) log(error.cause ?? error);
    return { type: "error", ref, code: error.code, message: error.message };
  }
  log(error);
  return { type: "error", ref, code: ErrorCode.internal, message: "internal error" };
}
