/**
 * The publish frame that is well formed, read by hand instead of by the `ClientFrame` schema: the
 * most frequent frame, and zod's discriminated union cost ~3–4 µs of each publish's ~30 µs of
 * JavaScript before its command leaves (round six's stage marks). This is a shortcut, not a second
 * schema: it answers only "zod would accept this, and here is zod's output"; everything else
 * (another type, any field zod might refuse) goes to zod, which alone writes the error frames.
 * src/gateway/frame-input.test.ts compares both on generated frames.
 */
import type { ClientFrame } from "./frames.ts";

export type PublishFrame = Extract<ClientFrame, { type: "publish" }>;

/** The schema's bounds (frames.ts: `topic`, `ref`, `IdempotencyKey`). */
const MAX_TOPIC_LENGTH = 1024;
const MAX_KEY_LENGTH = 64;

/**
 * The frame as `ClientFrame.parse` would return it when `parsed` (from JSON.parse) is a publish
 * frame zod accepts; undefined when zod must decide (it may still accept it).
 */
export function wellFormedPublish(parsed: unknown): PublishFrame | undefined {
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const frame = parsed as Record<string, unknown>;
  // `data` may be any value, but it must be there (zod refuses a publish without it).
  if (frame.type !== "publish" || !("data" in frame)) return undefined;
  const { topic, ref, key } = frame;
  if (typeof topic !== "string" || topic.length > MAX_TOPIC_LENGTH) return undefined;
  if (ref !== undefined && !(typeof ref === "number" && Number.isSafeInteger(ref) && ref >= 0)) return undefined;
  if (key !== undefined && !(typeof key === "string" && key.length >= 1 && key.length <= MAX_KEY_LENGTH)) return undefined;
  // zod's output: the schema's keys only (unknown keys stripped), an absent optional one absent.
  const out: PublishFrame = ref === undefined ? { type: "publish", topic, data: frame.data } : { type: "publish", topic, ref, data: frame.data };
  if (key !== undefined) out.key = key;
  return out;
}
