import { expect, test } from "bun:test";
import { slotOf } from "./slot.ts";

test("slots match Redis Cluster's (values from CLUSTER KEYSLOT)", () => {
  expect(slotOf("foo")).toBe(12182);
  expect(slotOf("bar")).toBe(5061);
  expect(slotOf("{user1000}.following")).toBe(slotOf("user1000"));
  expect(slotOf("foo{}{bar}")).toBe(slotOf("foo{}{bar}")); // an empty tag hashes the whole key
  expect(slotOf("sb:{room:a}:meta")).toBe(slotOf("sb:{room:a}:ch"));
});
