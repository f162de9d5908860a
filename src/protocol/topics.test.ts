import { describe, expect, test } from "bun:test";
import { isValidTopic } from "./topics.ts";

describe("topic names", () => {
  test("match ^[A-Za-z0-9:_.@|+=-]{1,128}$", () => {
    expect(isValidTopic("room:lobby")).toBe(true);
    for (const id of ["auth0|64f1c2", "google-oauth2|1234", "ana@example.com", "a+b=c"]) expect(isValidTopic(`user:${id}`)).toBe(true);
    for (const bad of ["user:a/b", "user:a#b", "user:a%b", "user:a b", "user:<x>"]) expect(isValidTopic(bad)).toBe(false);
    expect(isValidTopic("room:a.b-c_d:e")).toBe(true);
    expect(isValidTopic("x".repeat(128))).toBe(true);
    expect(isValidTopic("x".repeat(129))).toBe(false);
    expect(isValidTopic("")).toBe(false);
    expect(isValidTopic("room:with space")).toBe(false);
    expect(isValidTopic("room:é")).toBe(false);
    expect(isValidTopic(42)).toBe(false);
  });
});
