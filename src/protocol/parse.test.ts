import { describe, expect, test } from "bun:test";
import { MAX_DEPTH, outOfRange, parseJson, scanJson, tooDeep, whyNotJson } from "./parse.ts";

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

  test("a number that overflows to Infinity is found with its path; large finite ones, underflows and strings are not", () => {
    const check = (raw: string) => outOfRange(parseJson(raw), scanJson(raw));
    expect(check('{"data":1e999}')).toBe("data: number out of range");
    expect(check('{"data":{"a":[0,-1E+400]}}')).toBe("data.a.1: number out of range");
    expect(check("1e999")).toBe("value: number out of range");
    expect(check(`{"n":1${"0".repeat(309)}}`)).toBe("n: number out of range");
    expect(check(`{"n":1${"0".repeat(260)}e50}`)).toBe("n: number out of range");
    for (const raw of ['{"data":1.7976931348623157e308}', '{"data":1e-999}', '{"data":"1e999"}', `{"n":1${"0".repeat(200)}}`, '{"e":"a1e100"}', '{"data":12e99}']) {
      expect(check(raw)).toBeUndefined();
    }
    // Only literals that may overflow make the value walked: not strings, not true/false, not small exponents.
    for (const raw of ['{"data":"1e999"}', '{"t":true,"f":false,"n":1e99,"m":-1E-999}', `{"s":"${"9".repeat(300)}"}`, "[1e+99]"]) expect(scanJson(raw)).toBe(0);
    for (const raw of ["[1e100]", "[2E+308]", `[${"9".repeat(200)}]`, '{"a":{"b":[0.5e0400]}}']) expect(scanJson(raw)).toBe(2);
  });
});
