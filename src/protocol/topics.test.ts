import { describe, expect, test } from "bun:test";
import { authorize, isValidTopic, namespaceOf } from "./topics.ts";
import { SwitchboardError } from "./codes.ts";

const alice = { kind: "user", userId: "alice" } as const;
const server = { kind: "server" } as const;

function codeOf(fn: () => void): string | null {
  try {
    fn();
    return null;
  } catch (error) {
    return error instanceof SwitchboardError ? error.code : "other";
  }
}

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

  test("the namespace is the part before the first colon", () => {
    expect(namespaceOf("room:a:b")).toBe("room");
    expect(namespaceOf("user:alice")).toBe("user");
    expect(namespaceOf("broadcast:news")).toBe("broadcast");
    expect(namespaceOf("rooms:a")).toBeNull();
    expect(namespaceOf("room")).toBeNull();
  });
});

describe("permissions", () => {
  test("room:* — any user subscribes and publishes", () => {
    expect(codeOf(() => authorize(alice, "subscribe", "room:x"))).toBeNull();
    expect(codeOf(() => authorize(alice, "publish", "room:x"))).toBeNull();
  });

  test("user:<id> — only its owner subscribes, anyone publishes", () => {
    expect(codeOf(() => authorize(alice, "subscribe", "user:alice"))).toBeNull();
    expect(codeOf(() => authorize(alice, "subscribe", "user:bob"))).toBe("forbidden");
    expect(codeOf(() => authorize(alice, "subscribe", "user:alice2"))).toBe("forbidden");
    expect(codeOf(() => authorize(alice, "publish", "user:bob"))).toBeNull();
  });

  test("broadcast:* — users subscribe, only the server API publishes", () => {
    expect(codeOf(() => authorize(alice, "subscribe", "broadcast:news"))).toBeNull();
    expect(codeOf(() => authorize(alice, "publish", "broadcast:news"))).toBe("forbidden");
    expect(codeOf(() => authorize(server, "publish", "broadcast:news"))).toBeNull();
  });

  test("a malformed name is bad_request; a valid name outside the namespaces is forbidden", () => {
    expect(codeOf(() => authorize(alice, "subscribe", "bad topic"))).toBe("bad_request");
    expect(codeOf(() => authorize(alice, "subscribe", "secret:x"))).toBe("forbidden");
    expect(codeOf(() => authorize(server, "publish", "secret:x"))).toBe("forbidden");
    expect(codeOf(() => authorize(alice, "subscribe", "lobby"))).toBe("forbidden");
  });
});
