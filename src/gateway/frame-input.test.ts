/**
 * validateFrame's publish shortcut (protocol/publish-check.ts) against zod alone: for any frame,
 * the same frame out or the same error frame, byte for byte. Frames are generated as JSON text
 * and parsed the way a socket's frames are (parseJson), so every value is one a client can send.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ClientFrame } from "../protocol/frames.ts";
import { parseJson } from "../protocol/parse.ts";
import { wellFormedPublish } from "../protocol/publish-check.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { describeFrameError, errorFrame, validateFrame } from "./frame-input.ts";
import { whyNotJson } from "../protocol/parse.ts";

/** validateFrame as it was before the shortcut: zod decides every frame. */
function zodOnly(raw: string, parsed: unknown): { frame: ClientFrame } | { error: SwitchboardError } {
  const result = parsed === undefined ? null : ClientFrame.safeParse(parsed);
  if (result !== null && result.success) return { frame: result.data };
  const why = result === null ? whyNotJson(raw, "frame") : describeFrameError(result.error);
  return { error: new SwitchboardError(ErrorCode.badRequest, why) };
}

/** What the client would receive: the frame's fields in order, or the error frame's bytes. */
function outcome(result: { frame: ClientFrame } | { error: SwitchboardError }): string {
  if ("frame" in result) return `frame ${JSON.stringify(Object.entries(result.frame))} keys=${Object.keys(result.frame).join(",")}`;
  return `error ${JSON.stringify(errorFrame(7, result.error, () => {}))}`;
}

const text = (n: number) => "t".repeat(n);
/** Field values at and around each bound of the schema, of the right type and of wrong ones. */
const anyValue = fc.oneof(fc.constantFrom<unknown>(null, true, 0, -1, 1.5, "", "x", [], {}), fc.jsonValue({ maxDepth: 2 }));
const typeValue = fc.oneof(fc.constantFrom<unknown>("publish", "publish", "publish", "Publish", "publish ", "subscribe", "ping", "auth"), anyValue);
const topicValue = fc.oneof(fc.constantFrom<unknown>("room:a", "", text(1023), text(1024), text(1025), "é".repeat(1024), "😀".repeat(512), "😀".repeat(513)), fc.string(), anyValue);
const refText = fc.constantFrom("0", "-0", "1", "-1", "1.5", "1e3", "1.0", "9007199254740991", "9007199254740992", "1e300", '"1"', "null", "true", "[]", "{}");
const keyValue = fc.oneof(fc.constantFrom<unknown>("", "k", text(64), text(65), "😀".repeat(32), "😀".repeat(33)), fc.string({ maxLength: 70 }), anyValue);

/** A frame's JSON text with each field present or absent, in any order, with extra fields. */
const frameText = fc
  .record(
    {
      type: typeValue.map((v) => JSON.stringify(v)),
      topic: topicValue.map((v) => JSON.stringify(v)),
      ref: refText,
      data: anyValue.map((v) => JSON.stringify(v)),
      key: keyValue.map((v) => JSON.stringify(v)),
      since: fc.constant('{"seq":1,"epoch":"e"}'),
      extra: anyValue.map((v) => JSON.stringify(v)),
      __proto__: fc.constant('{"type":"publish"}'),
    },
    { requiredKeys: [] },
  )
  .chain((fields) => fc.shuffledSubarray(Object.entries(fields), { minLength: Object.keys(fields).length }))
  .map((entries) => `{${entries.map(([name, value]) => `${JSON.stringify(name)}:${value}`).join(",")}}`);

describe("validateFrame: the publish shortcut answers as zod alone would", () => {
  test("generated frames: the same frame or the same error frame, byte for byte", () => {
    fc.assert(
      fc.property(fc.oneof(frameText, fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v))), (raw) => {
        const parsed = parseJson(raw);
        expect(outcome(validateFrame(raw, parsed))).toBe(outcome(zodOnly(raw, parsed)));
      }),
      { numRuns: 20_000 },
    );
  });

  test("the shortcut takes the usual publish frames (and only frames zod accepts)", () => {
    const usual = ['{"type":"publish","topic":"room:a","ref":3,"data":{"text":"hi"}}', '{"type":"publish","topic":"room:a","data":1,"key":"k-1"}', '{"type":"publish","topic":"room:a","data":null,"extra":1}'];
    for (const raw of usual) {
      const fast = wellFormedPublish(parseJson(raw));
      expect(fast).toBeDefined();
      expect(fast).toStrictEqual(ClientFrame.parse(parseJson(raw)) as typeof fast);
    }
    fc.assert(
      fc.property(frameText, (raw) => {
        const fast = wellFormedPublish(parseJson(raw));
        if (fast !== undefined) expect(ClientFrame.safeParse(parseJson(raw)).success).toBe(true);
      }),
      { numRuns: 5_000 },
    );
  });
});
