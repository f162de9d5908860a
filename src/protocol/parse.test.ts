import { describe, expect, test } from "bun:test";
import { MAX_DEPTH, parseJson, tooDeep, whyNotJson } from "./parse.ts";

describe("untrusted JSON", () => {
  test("nesting up to MAX_DEPTH parses; one level more is refused before parsing", () => {
    const nested = (n: number) => "[".repeat(n) + "]".repeat(n);
    expect(parseJson(nested(MAX_DEPTH))).toBeDefined();
    expect(tooDeep(nested(MAX_DEPTH + 1))).toBe(true);
    expect(parseJson(nested(MAX_DEPTH + 1))).toBeUndefined();
    expect(whyNotJson(nested(MAX_DEPTH + 1), "body")).toBe(`body nests deeper than ${MAX_DEPTH} levels`);
  });

  test("brackets inside strings, escaped quotes included, do not count", () => {
    const text = JSON.stringify({ a: "[".repeat(100) + '\\"{{{' });
    expect(tooDeep(text)).toBe(false);
    expect(parseJson(text)).toEqual({ a: "[".repeat(100) + '\\"{{{' });
  });

  test("not JSON is undefined, with a sentence for frames and bodies", () => {
    expect(parseJson("{nope")).toBeUndefined();
    expect(whyNotJson("{nope", "frame")).toBe("frame is not valid JSON");
    expect(whyNotJson("{nope", "body")).toBe("body must be JSON");
  });
});
