/**
 * The Presence conformance suite (src/presence/presence.ts), run on MemoryPresence and
 * RedisPresence: entries per connection, a user joins with its first connection and leaves with
 * its last.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Presence } from "../../src/presence/presence.ts";
import type { PresenceMember, User } from "../../src/protocol/frames.ts";
import { uniqueTopic } from "./broker.suite.ts";

export type PresenceFactory = () => Presence | Promise<Presence>;

const alice: User = { id: "u-alice", name: "alice" };
const bob: User = { id: "u-bob", name: "bob" };

/** Members in a stable order, for comparisons. */
export function sorted(members: PresenceMember[]): PresenceMember[] {
  return [...members].sort((a, b) => a.user.id.localeCompare(b.user.id));
}

export function describePresence(name: string, factory: PresenceFactory): void {
  describe(`Presence conformance: ${name}`, () => {
    const open: Presence[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((p) => p.close()));
    });
    async function start() {
      const presence = await factory();
      open.push(presence);
      await presence.start({ onExpired() {} });
      return presence;
    }

    test("a topic nobody joined has no members", async () => {
      const presence = await start();
      expect(await presence.members(uniqueTopic())).toEqual([]);
    });

    test("a user joins with its first connection only, and leaves with its last", async () => {
      const presence = await start();
      const topic = uniqueTopic();
      expect(await presence.join(topic, "c1", alice)).toBe(true);
      expect(await presence.join(topic, "c2", alice)).toBe(false);
      expect(await presence.join(topic, "c3", bob)).toBe(true);
      expect(sorted(await presence.members(topic))).toEqual([
        { user: alice, connections: 2 },
        { user: bob, connections: 1 },
      ]);
      expect(await presence.leave(topic, "c1", alice)).toBe(false);
      expect(await presence.members(topic)).toContainEqual({ user: alice, connections: 1 });
      expect(await presence.leave(topic, "c2", alice)).toBe(true);
      expect(await presence.members(topic)).toEqual([{ user: bob, connections: 1 }]);
      expect(await presence.leave(topic, "c3", bob)).toBe(true);
      expect(await presence.members(topic)).toEqual([]);
    });

    test("the same connection joining twice counts once; an unknown connection leaving reports nothing", async () => {
      const presence = await start();
      const topic = uniqueTopic();
      expect(await presence.join(topic, "c1", alice)).toBe(true);
      expect(await presence.join(topic, "c1", alice)).toBe(false);
      expect(await presence.members(topic)).toEqual([{ user: alice, connections: 1 }]);
      expect(await presence.leave(topic, "nope", alice)).toBe(false);
      expect(await presence.leave(topic, "c1", alice)).toBe(true);
      expect(await presence.leave(topic, "c1", alice)).toBe(false);
    });

    test("topics are independent", async () => {
      const presence = await start();
      const [a, b] = [uniqueTopic(), uniqueTopic()];
      expect(await presence.join(a, "c1", alice)).toBe(true);
      expect(await presence.join(b, "c1", alice)).toBe(true);
      expect(await presence.leave(a, "c1", alice)).toBe(true);
      expect(await presence.members(b)).toEqual([{ user: alice, connections: 1 }]);
    });

    test("concurrent joins and leaves of one user report exactly one join and one leave", async () => {
      const presence = await start();
      const topic = uniqueTopic();
      const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
      const joins = await Promise.all(ids.map((id) => presence.join(topic, id, alice)));
      expect(joins.filter(Boolean).length).toBe(1);
      expect(await presence.members(topic)).toEqual([{ user: alice, connections: 20 }]);
      const leaves = await Promise.all(ids.map((id) => presence.leave(topic, id, alice)));
      expect(leaves.filter(Boolean).length).toBe(1);
      expect(await presence.members(topic)).toEqual([]);
    });
  });
}
