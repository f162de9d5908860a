/**
 * SPEC §5 as a table: (caps | null, namespaces, user, topic, action) → allow / forbidden / ask.
 * `decide` is pure; `Permissions.authorize` is checked for its codes (bad_request, forbidden,
 * unavailable) with the real AUTHZ_URL client and a real HTTP server as the app (the client's
 * timeouts, cache and outages are tested in test/authz.test.ts).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { decide, grantedActions, patternMatches, Permissions, type Action, type Actor } from "./permissions.ts";
import { AuthzClient } from "./authz.ts";
import { loadNamespaces } from "./namespaces.ts";
import type { Caps } from "./caps.ts";
import { SwitchboardError } from "../protocol/codes.ts";

const CONFIGURED = loadNamespaces({
  historySize: 100,
  historyTtlS: 300,
  authzUrl: "http://127.0.0.1:1/authz",
  namespaces: JSON.stringify({
    doc: { subscribe: "caps", publish: "caps", presence: true },
    typing: { subscribe: "app", publish: "app", delivery: "ephemeral" },
    orders: { subscribe: "owner", publish: "server" },
    vault: { subscribe: "none", publish: "server", presence: true },
    quiet: { subscribe: "any", publish: "owner", presence: false },
  }),
});
const BUILT_IN = loadNamespaces({ historySize: 100, historyTtlS: 300 });

const alice = { id: "alice", name: "Alice" };
const user = (caps: Caps | null): Actor => ({ kind: "user", user: alice, caps });
const server: Actor = { kind: "server" };

type Verdict = "allow" | "forbidden" | "ask";
type Row = [Actor, Action, string, Verdict];

function verdictOf(actor: Actor, action: Action, topic: string, namespaces = CONFIGURED): Verdict {
  return decide(namespaces, actor, action, topic).verdict;
}

function runTable(rows: Row[], namespaces = CONFIGURED) {
  for (const [actor, action, topic, expected] of rows) {
    const who = actor.kind === "server" ? "server" : `caps ${JSON.stringify(actor.caps)}`;
    test(`${who}: ${action} ${topic} → ${expected}`, () => {
      expect(verdictOf(actor, action, topic, namespaces)).toBe(expected);
    });
  }
}

describe("caps patterns: exact, prefix*, *", () => {
  test("an exact pattern covers that topic only", () => {
    expect(patternMatches("room:a", "room:a")).toBe(true);
    expect(patternMatches("room:a", "room:ab")).toBe(false);
  });
  test("prefix* covers every topic starting with the prefix, * covers all", () => {
    expect(patternMatches("doc:*", "doc:1")).toBe(true);
    expect(patternMatches("doc:*", "doc:")).toBe(true);
    expect(patternMatches("doc:*", "docs:1")).toBe(false);
    expect(patternMatches("doc:1*", "doc:12")).toBe(true);
    expect(patternMatches("*", "anything:at-all")).toBe(true);
  });
  test("the actions granted are the union over every covering pattern", () => {
    const caps: Caps = { "doc:*": ["subscribe"], "doc:7": ["publish"], "*": ["history"] };
    expect([...grantedActions(caps, "doc:7")].sort()).toEqual(["history", "publish", "subscribe"]);
    expect([...grantedActions(caps, "doc:8")].sort()).toEqual(["history", "subscribe"]);
  });
});

describe("without caps: the built-in namespaces behave as the seed (SPEC §3)", () => {
  runTable(
    [
      [user(null), "subscribe", "room:x", "allow"],
      [user(null), "publish", "room:x", "allow"],
      [user(null), "presence", "room:x", "allow"],
      [user(null), "history", "room:x", "allow"],
      [user(null), "subscribe", "user:alice", "allow"],
      [user(null), "history", "user:alice", "allow"],
      [user(null), "subscribe", "user:bob", "forbidden"],
      [user(null), "subscribe", "user:alice2", "forbidden"],
      [user(null), "publish", "user:bob", "allow"],
      [user(null), "presence", "user:alice", "forbidden"],
      [user(null), "subscribe", "broadcast:news", "allow"],
      [user(null), "publish", "broadcast:news", "forbidden"],
      [user(null), "presence", "broadcast:news", "forbidden"],
      [user(null), "subscribe", "secret:x", "forbidden"],
      [user(null), "subscribe", "lobby", "forbidden"],
      [user(null), "publish", ":x", "forbidden"],
    ],
    BUILT_IN,
  );
});

describe("without caps: the namespace's rules", () => {
  runTable([
    [user(null), "subscribe", "doc:1", "forbidden"],
    [user(null), "publish", "doc:1", "forbidden"],
    [user(null), "presence", "doc:1", "forbidden"],
    [user(null), "history", "doc:1", "forbidden"],
    [user(null), "subscribe", "typing:doc-1", "ask"],
    [user(null), "publish", "typing:doc-1", "ask"],
    [user(null), "history", "typing:doc-1", "ask"],
    [user(null), "presence", "typing:doc-1", "forbidden"],
    [user(null), "subscribe", "orders:alice", "allow"],
    [user(null), "subscribe", "orders:bob", "forbidden"],
    [user(null), "subscribe", "orders:alice:2", "forbidden"],
    [user(null), "publish", "orders:alice", "forbidden"],
    [user(null), "subscribe", "vault:1", "forbidden"],
    [user(null), "presence", "vault:1", "forbidden"],
    [user(null), "publish", "quiet:alice", "allow"],
    [user(null), "publish", "quiet:bob", "forbidden"],
    [user(null), "presence", "quiet:alice", "forbidden"],
  ]);
  test("the app is asked `subscribe` for reading questions and `publish` for writing", () => {
    expect(decide(CONFIGURED, user(null), "history", "typing:x")).toEqual({ verdict: "ask", question: "subscribe" });
    expect(decide(CONFIGURED, user(null), "publish", "typing:x")).toEqual({ verdict: "ask", question: "publish" });
  });
});

describe("with caps: exactly what they grant, plus the own inbox", () => {
  const room42 = user({ "room:team-42": ["subscribe", "publish", "presence"] });
  const docs = user({ "doc:*": ["subscribe", "history"] });
  const none = user({});
  runTable([
    [room42, "subscribe", "room:team-42", "allow"],
    [room42, "publish", "room:team-42", "allow"],
    [room42, "presence", "room:team-42", "allow"],
    [room42, "history", "room:team-42", "forbidden"],
    // `room` allows any user by default, but a credential with caps gets exactly them.
    [room42, "subscribe", "room:lobby", "forbidden"],
    [room42, "publish", "user:bob", "forbidden"],
    [room42, "subscribe", "user:alice", "allow"],
    [room42, "history", "user:alice", "allow"],
    [room42, "publish", "user:alice", "forbidden"],
    [docs, "subscribe", "doc:1", "allow"],
    [docs, "history", "doc:1", "allow"],
    [docs, "publish", "doc:1", "forbidden"],
    [docs, "presence", "doc:1", "forbidden"],
    [none, "subscribe", "room:x", "forbidden"],
    [none, "subscribe", "user:alice", "allow"],
    [none, "subscribe", "user:bob", "forbidden"],
    // A grant on an `app` namespace decides without asking the app.
    [user({ "typing:*": ["subscribe"] }), "subscribe", "typing:1", "allow"],
    [user({ "typing:*": ["subscribe"] }), "publish", "typing:1", "forbidden"],
    // A support agent granted user:* reads other inboxes: the grant is trusted as written.
    [user({ "user:*": ["subscribe"] }), "subscribe", "user:bob", "allow"],
  ]);
});

describe("a grant never overrides none/server, never leaves the namespaces, never turns presence on", () => {
  const everything = user({ "*": ["subscribe", "publish", "presence", "history"] });
  runTable([
    [everything, "subscribe", "vault:1", "forbidden"],
    [everything, "publish", "vault:1", "forbidden"],
    [everything, "publish", "orders:alice", "forbidden"],
    [everything, "publish", "broadcast:news", "forbidden"],
    [everything, "subscribe", "nowhere:1", "forbidden"],
    [everything, "subscribe", "lobby", "forbidden"],
    [everything, "presence", "typing:1", "forbidden"],
    [everything, "presence", "quiet:1", "forbidden"],
    [everything, "presence", "user:alice", "forbidden"],
    [everything, "presence", "doc:1", "allow"],
    [everything, "presence", "vault:1", "allow"],
  ]);
});

describe("the server API acts as the server", () => {
  runTable([
    [server, "publish", "broadcast:news", "allow"],
    [server, "publish", "vault:1", "allow"],
    [server, "publish", "orders:alice", "allow"],
    [server, "subscribe", "vault:1", "allow"],
    [server, "subscribe", "user:bob", "allow"],
    [server, "publish", "typing:1", "allow"],
    [server, "history", "doc:1", "allow"],
    [server, "presence", "doc:1", "allow"],
    [server, "presence", "room:x", "allow"],
    // No member list where the namespace keeps none; no topic outside every namespace.
    [server, "presence", "quiet:1", "forbidden"],
    [server, "publish", "nowhere:1", "forbidden"],
    [server, "subscribe", "lobby", "forbidden"],
  ]);
});

describe("Permissions.authorize: the one decision point", () => {
  // The app behind AUTHZ_URL, as a real HTTP server: it answers by topic and counts the questions.
  const asked: string[] = [];
  const app = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const { user: u, topic, action } = (await req.json()) as { user: { id: string }; topic: string; action: string };
      asked.push(`${u.id} ${action} ${topic}`);
      if (topic.endsWith(":down")) return new Response("oops", { status: 500 });
      return Response.json({ allow: topic.endsWith(":yes") });
    },
  });
  afterAll(() => app.stop(true));
  const authz = new AuthzClient({ url: `http://127.0.0.1:${app.port}/authz`, secret: "s".repeat(32) });
  const permissions = new Permissions(CONFIGURED, authz);

  async function codeOf(p: Promise<unknown>): Promise<string | null> {
    try {
      await p;
      return null;
    } catch (error) {
      return error instanceof SwitchboardError ? error.code : "other";
    }
  }

  test("a malformed name is bad_request, before any rule", async () => {
    for (const topic of ["bad topic", "", 42, null, "x".repeat(129)]) {
      expect(await codeOf(permissions.authorize(user(null), "subscribe", topic))).toBe("bad_request");
      expect(await codeOf(permissions.authorize(server, "publish", topic))).toBe("bad_request");
    }
  });

  test("allowed: resolves with the namespace's options", async () => {
    expect(await permissions.authorize(user(null), "subscribe", "room:1")).toMatchObject({ name: "room", presence: true, delivery: "ordered", history: { size: 100, ttlS: 300 } });
    expect((await permissions.authorize(server, "publish", "typing:1")).delivery).toBe("ephemeral");
  });

  test("forbidden carries a sentence", async () => {
    const error = await permissions.authorize(user(null), "publish", "broadcast:x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SwitchboardError);
    expect((error as SwitchboardError).code).toBe("forbidden");
    expect((error as SwitchboardError).message).toContain("broadcast");
  });

  test("`app`: the app's yes allows, its no is forbidden, its outage is unavailable", async () => {
    asked.length = 0;
    expect(await codeOf(permissions.authorize(user(null), "subscribe", "typing:yes"))).toBeNull();
    expect(await codeOf(permissions.authorize(user(null), "publish", "typing:no"))).toBe("forbidden");
    expect(await codeOf(permissions.authorize(user(null), "publish", "typing:down"))).toBe("unavailable");
    expect(asked).toEqual(["alice subscribe typing:yes", "alice publish typing:no", "alice publish typing:down"]);
  });

  test("the app is not asked when a grant, the server, or the namespace already decides", async () => {
    asked.length = 0;
    await permissions.authorize(user({ "typing:*": ["subscribe"] }), "subscribe", "typing:no");
    await permissions.authorize(server, "publish", "typing:no");
    expect(await codeOf(permissions.authorize(user(null), "presence", "typing:yes"))).toBe("forbidden");
    expect(await codeOf(permissions.authorize(user({}), "subscribe", "typing:yes"))).toBe("forbidden");
    expect(asked).toEqual([]);
  });

  test("asServer: the same rules for the server API, synchronously, never asking the app", () => {
    asked.length = 0;
    expect(permissions.asServer("publish", "typing:no").delivery).toBe("ephemeral");
    expect(permissions.asServer("subscribe", "vault:1").name).toBe("vault");
    const codeOfSync = (fn: () => unknown) => {
      try {
        fn();
        return null;
      } catch (error) {
        return error instanceof SwitchboardError ? error.code : "other";
      }
    };
    expect(codeOfSync(() => permissions.asServer("publish", "bad topic"))).toBe("bad_request");
    expect(codeOfSync(() => permissions.asServer("publish", "nowhere:1"))).toBe("forbidden");
    expect(codeOfSync(() => permissions.asServer("presence", "quiet:1"))).toBe("forbidden");
    expect(asked).toEqual([]);
  });

  test("without an AUTHZ client an `app` question is unavailable, never allowed", async () => {
    expect(await codeOf(new Permissions(CONFIGURED, null).authorize(user(null), "subscribe", "typing:yes"))).toBe("unavailable");
  });
});
