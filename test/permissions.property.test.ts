/**
 * SPEC §5, as a property over real sockets: no sequence of frames lets a user read or write outside
 * what it is allowed. fast-check generates sequences of subscribe (with or without `since`),
 * unsubscribe, publish and presence frames from three users, mixed with server-API publications,
 * over topics of every kind of namespace; after each sequence, everything each client received is
 * checked against an oracle written here from the SPEC's table (not from src/auth).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { TestClient, closeAll, type Frame } from "./support/client.ts";
import { apiPublish, session, startServer, type TestServer, killAllServers } from "./support/server.ts";

const NAMESPACES = {
  orders: { subscribe: "owner", publish: "server" },
  quiet: { subscribe: "any", publish: "owner", presence: false },
  doc: { subscribe: "caps", publish: "caps", presence: true },
  vault: { subscribe: "none", publish: "server", presence: true },
};
const USERS = ["alice", "bob", "carol"] as const;
type UserName = (typeof USERS)[number];

const TOPICS = [
  "room:a", "room:b",
  "user:alice", "user:bob", "user:carol",
  "broadcast:news",
  "orders:alice", "orders:bob",
  "quiet:alice", "quiet:bob", "quiet:x",
  "doc:1", "vault:1", "nowhere:1", "lobby",
];

const KNOWN = new Set(["room", "user", "broadcast", ...Object.keys(NAMESPACES)]);

/** The oracle: SPEC §3's built-ins and the NAMESPACES above, for users without caps. */
function nsOf(topic: string): string | null {
  const colon = topic.indexOf(":");
  return colon > 0 ? topic.slice(0, colon) : null;
}
function mayRead(user: UserName, topic: string): boolean {
  const ns = nsOf(topic);
  if (ns === "room" || ns === "broadcast" || ns === "quiet") return true;
  if (ns === "user" || ns === "orders") return topic === `${ns}:${user}`;
  return false; // doc (caps), vault (none), outside every namespace
}
function mayWrite(user: UserName, topic: string): boolean {
  const ns = nsOf(topic);
  if (ns === "room" || ns === "user") return true;
  if (ns === "quiet") return topic === `quiet:${user}`;
  return false;
}
/** Presence is kept only in room (built-in) — doc and vault keep it, but nobody may read them. */
function mayListPresence(user: UserName, topic: string): boolean {
  return nsOf(topic) === "room" && mayRead(user, topic);
}

type Command =
  | { kind: "subscribe"; user: UserName; topic: string; since: boolean }
  | { kind: "unsubscribe"; user: UserName; topic: string }
  | { kind: "publish"; user: UserName; topic: string }
  | { kind: "presence"; user: UserName; topic: string }
  | { kind: "server"; topic: string };

const user = fc.constantFrom(...USERS);
const topic = fc.constantFrom(...TOPICS);
const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant("subscribe" as const), user, topic, since: fc.boolean() }),
  fc.record({ kind: fc.constant("unsubscribe" as const), user, topic }),
  fc.record({ kind: fc.constant("publish" as const), user, topic }),
  fc.record({ kind: fc.constant("presence" as const), user, topic }),
  fc.record({ kind: fc.constant("server" as const), topic }),
);

let server: TestServer;
const clients = new Set<TestClient>();
/** Users ever acked a subscribe of a topic (any run): the only ones presence may list there. */
const everJoined = new Map<string, Set<string>>();

beforeAll(async () => {
  server = await startServer({ NAMESPACES: JSON.stringify(NAMESPACES), RATE_LIMIT_PER_S: "1000", RATE_LIMIT_BURST: "1000" });
  for (const u of USERS) await session(server, u);
}, 30_000);
afterEach(async () => {
  await closeAll(clients);
  clients.clear();
});
afterAll(async () => {
  await closeAll(clients);
  server?.kill();
  killAllServers();
});

async function run(commands: Command[]): Promise<void> {
  const sockets = new Map<UserName, TestClient>();
  for (const u of USERS) {
    const c = await TestClient.connect(server.wsUrl, { cookie: (await session(server, u)).cookie });
    clients.add(c);
    sockets.set(u, c);
  }
  /** Topics each user's socket holds an ack for, at any point of this run. */
  const acked = new Map<UserName, Set<string>>(USERS.map((u) => [u, new Set([`user:${u}`])]));
  const epochs = new Map<string, string>();
  let i = 0;
  for (const cmd of commands) {
    i++;
    if (cmd.kind === "server") {
      const r = await apiPublish(server, { topic: cmd.topic, data: { i, by: "server" } });
      // The server is bound by no client rule, only by the namespaces themselves.
      expect(r.status).toBe(KNOWN.has(nsOf(cmd.topic) ?? "") ? 202 : 403);
      continue;
    }
    const c = sockets.get(cmd.user)!;
    const frame: Record<string, unknown> = { type: cmd.kind, topic: cmd.topic };
    if (cmd.kind === "publish") frame.data = { i, by: cmd.user };
    if (cmd.kind === "subscribe" && cmd.since) frame.since = { seq: 0, epoch: epochs.get(cmd.topic) ?? "unknown" };
    const reply = await c.request(frame);
    const allowed =
      cmd.kind === "subscribe" ? mayRead(cmd.user, cmd.topic)
      : cmd.kind === "publish" ? mayWrite(cmd.user, cmd.topic)
      : cmd.kind === "presence" ? mayListPresence(cmd.user, cmd.topic)
      : true;
    if (!allowed) {
      expect(reply).toMatchObject({ type: "error", code: "forbidden" });
      continue;
    }
    expect(reply.type).toBe(cmd.kind === "presence" ? "presence" : "ack");
    if (cmd.kind === "subscribe") {
      acked.get(cmd.user)!.add(cmd.topic);
      (everJoined.get(cmd.topic) ?? everJoined.set(cmd.topic, new Set()).get(cmd.topic)!).add(cmd.user);
      epochs.set(cmd.topic, reply.epoch);
    }
    if (cmd.kind === "presence") {
      for (const m of reply.members as { user: { id: string } }[]) expect(everJoined.get(cmd.topic)?.has(m.user.id)).toBe(true);
    }
  }
  // Every frame sent before a pong has arrived before it.
  for (const c of sockets.values()) expect((await c.request({ type: "ping" })).type).toBe("pong");
  for (const [u, c] of sockets) checkReceived(u, c.frames, acked.get(u)!);
}

/** Everything a user's socket received on topics: readable, subscribed, written by a writer. */
function checkReceived(u: UserName, frames: Frame[], acked: Set<string>): void {
  for (const f of frames) {
    if (f.type === "message" || f.type.startsWith("presence.")) {
      expect({ user: u, topic: f.topic, readable: mayRead(u, f.topic!), subscribed: acked.has(f.topic!) }).toEqual({ user: u, topic: f.topic, readable: true, subscribed: true });
    }
    if (f.type === "message") {
      const writer = f.from === "server" || (USERS as readonly string[]).includes(f.from) && mayWrite(f.from as UserName, f.topic!);
      expect({ topic: f.topic, from: f.from, writer }).toEqual({ topic: f.topic, from: f.from, writer: true });
    }
    if (f.type.startsWith("presence.")) expect(nsOf(f.topic!)).toBe("room");
  }
}

describe("no sequence of frames reads or writes outside the rules (SPEC §5)", () => {
  test("three users, every kind of namespace, server publications mixed in", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 5, maxLength: 25 }), async (commands) => {
        try {
          await run(commands);
        } finally {
          await closeAll(clients);
          clients.clear();
        }
      }),
      { numRuns: 25 },
    );
  }, 60_000);
});
