/**
 * What a presence change becomes (presence-announcements.ts), on the real namespace rules and fakes
 * for the broker and the webhook events: the webhook event and the frame where the namespace keeps
 * presence, the event alone with `joinLeave: false`, nothing where presence is off; at most one per
 * user and topic per second for both.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { loadNamespaces } from "../auth/namespaces.ts";
import { createLogger } from "../log.ts";
import { PresenceAnnouncements } from "./presence-announcements.ts";

const namespaces = loadNamespaces({
  historySize: 100,
  historyTtlS: 300,
  namespaces: JSON.stringify({ lobby: { subscribe: "any", publish: "any", presence: true, joinLeave: false } }),
});
const alice = { id: "u-alice", name: "alice" };

function setup() {
  const frames: string[] = [];
  const events: string[] = [];
  const announcements = new PresenceAnnouncements({
    broker: { broadcast: async (topic, frame) => void frames.push(`${topic} ${JSON.parse(frame).type}`) },
    log: createLogger("silent"),
    namespaceOf: (topic) => namespaces.of(topic),
    events: { presenceChanged: (topic, change, user) => void events.push(`${topic} ${change} ${user.name}`) },
  });
  opened.push(announcements);
  return { announcements, frames, events };
}
const opened: PresenceAnnouncements[] = [];
afterEach(() => {
  for (const a of opened.splice(0)) a.close();
});

describe("presence announcements", () => {
  test("a namespace with presence and join/leave frames: the webhook event and the frame", () => {
    const t = setup();
    t.announcements.changed("room:a", "presence.join", alice);
    expect(t.events).toEqual(["room:a presence.join alice"]);
    expect(t.frames).toEqual(["room:a presence.join"]);
  });

  test("joinLeave: false: the webhook event, no frame", () => {
    const t = setup();
    t.announcements.changed("lobby:a", "presence.join", alice);
    expect(t.events).toEqual(["lobby:a presence.join alice"]);
    expect(t.frames).toEqual([]);
  });

  test("presence off (the inbox) or outside every namespace: nothing", () => {
    const t = setup();
    t.announcements.changed("user:u-alice", "presence.join", alice);
    t.announcements.changed("nowhere:a", "presence.join", alice);
    expect(t.events).toEqual([]);
    expect(t.frames).toEqual([]);
  });

  test("a join and a leave within the second: the event and the frame held, then cancelled out", async () => {
    const t = setup();
    t.announcements.changed("room:b", "presence.join", alice);
    t.announcements.changed("room:b", "presence.leave", alice);
    t.announcements.changed("room:b", "presence.join", alice);
    await Bun.sleep(1100);
    expect(t.events).toEqual(["room:b presence.join alice"]);
    expect(t.frames).toEqual(["room:b presence.join"]);
  });
});
