/**
 * SPEC §5, as a property over real sockets: no sequence of frames lets a user read or write outside
 * what it is allowed. fast-check generates sequences of subscribe (with or without `since`),
 * unsubscribe, publish and presence frames from three users, mixed with server-API publications,
 * over topics of every kind of namespace — once with cookie sessions (no caps: the namespaces'
 * rules) and once with app tokens carrying random caps. After each sequence, everything each
 * client received is checked against an oracle written here from the SPEC's text (not from
 * src/auth), and every message against the publishes the server acknowledged.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { TestClient, closeAll, type Frame } from "./support/client.ts";
import { apiPublish, session, startServer, type TestServer, killAllServers } from "./support/server.ts";
import { signHsToken } from "./support/jwks.ts";

const AUTH_JWT_SECRET = "property-test-app-jwt-secret-0123456789abcdef";
type Rule = { subscribe: string; publish: string; presence: boolean };
/** Every namespace of the server below, built-ins included, as the SPEC states them. */
const RULES: Record<string, Rule> = {
  room: { subscribe: "any", publish: "any", presence: true },
  user: { subscribe: "owner", publish: "any", presence: false },
  broadcast: { subscribe: "any", publish: "server", presence: false },
  orders: { subscribe: "owner", publish: "server", presence: false },
  quiet: { subscribe: "any", publish: "owner", presence: false },
  doc: { subscribe: "caps", publish: "caps", presence: true },
  vault: { subscribe: "none", publish: "server", presence: true },
};
const { room: _room, user: _user, broadcast: _broadcast, ...NAMESPACES } = RULES;

const USERS = ["alice", "bob", "carol"] as const;
type UserName = (typeof USERS)[number];
type Action = "subscribe" | "publish" | "presence" | "history";
type Caps = Record<string, Action[]>;

const TOPICS = [
  "room:a", "room:b",
  "user:alice", "user:bob", "user:carol",
  "broadcast:news",
  "orders:alice", "orders:bob",
  "quiet:alice", "quiet:bob", "quiet:x",
  "doc:1", "doc:2", "vault:1", "nowhere:1", "lobby",
];
const PATTERNS = ["*", "room:*", "room:a", "user:*", "user:bob", "doc:*", "doc:1", "vault:*", "orders:*", "quiet:*", "broadcast:*", "nowhere:*", "lob*"];

// ── The oracle ─────────────────────────────────────────────────────────────

function ruleOf(topic: string): (Rule & { ns: string }) | null {
  const colon = topic.indexOf(":");
  const ns = colon > 0 ? topic.slice(0, colon) : "";
  return RULES[ns] === undefined ? null : { ns, ...RULES[ns]! };
}
function granted(caps: Caps, topic: string, action: Action): boolean {
  return Object.entries(caps).some(([p, actions]) => (p.endsWith("*") ? topic.startsWith(p.slice(0, -1)) : p === topic) && actions.includes(action));
}
/** What a user with these caps (null: none) may do with a topic, per SPEC §5. */
function may(user: UserName, caps: Caps | null, topic: string, action: Action): boolean {
  const rule = ruleOf(topic);
  if (rule === null) return false;
  if (action === "subscribe" && rule.subscribe === "none") return false;
  if (action === "publish" && rule.publish === "server") return false;
  if (action === "presence" && !rule.presence) return false;
  if (caps !== null) {
    if ((action === "subscribe" || action === "history") && topic === `user:${user}`) return true;
    return granted(caps, topic, action);
  }
  const r = action === "publish" ? rule.publish : rule.subscribe;
  return r === "any" || (r === "owner" && topic === `${rule.ns}:${user}`);
}

// ── Commands ───────────────────────────────────────────────────────────────

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
const caps: fc.Arbitrary<Caps> = fc.dictionary(
  fc.constantFrom(...PATTERNS),
  fc.subarray(["subscribe", "publish", "presence", "history"] as Action[]),
  { maxKeys: 4 },
);
const capsPerUser = fc.record({ alice: caps, bob: caps, carol: caps });

// ── The run ────────────────────────────────────────────────────────────────

let server: TestServer;
const clients = new Set<TestClient>();
/** Users ever acked a subscribe of a topic (any run): the only ones presence may list there. */
const everJoined = new Map<string, Set<string>>();
/** `from` of every publication the server acknowledged, per topic (any run; "server" included). */
const acceptedFrom = new Map<string, Set<string>>();
const note = (map: Map<string, Set<string>>, key: string, value: string) => (map.get(key) ?? map.set(key, new Set()).get(key)!).add(value);

beforeAll(async () => {
  server = await startServer({ NAMESPACES: JSON.stringify(NAMESPACES), AUTH_JWT_SECRET, RATE_LIMIT_PER_S: "1000", RATE_LIMIT_BURST: "1000" });
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

async function connect(u: UserName, caps: Caps | null): Promise<TestClient> {
  if (caps === null) {
    const c = await TestClient.connect(server.wsUrl, { cookie: (await session(server, u)).cookie });
    clients.add(c);
    return c;
  }
  const c = new TestClient(server.wsUrl);
  clients.add(c);
  await c.waitOpen();
  c.send({ type: "auth", token: await signHsToken(AUTH_JWT_SECRET, { sub: u, claims: { name: u, caps } }) });
  await c.welcome();
  return c;
}

async function run(commands: Command[], capsOf: Record<UserName, Caps | null>): Promise<void> {
  const sockets = new Map<UserName, TestClient>();
  for (const u of USERS) sockets.set(u, await connect(u, capsOf[u]));
  /** Topics each user's socket holds an ack for, at any point of this run (the inbox from welcome). */
  const acked = new Map<UserName, Set<string>>(USERS.map((u) => [u, new Set([`user:${u}`])]));
  const epochs = new Map<string, string>();
  let i = 0;
  for (const cmd of commands) {
    i++;
    if (cmd.kind === "server") {
      const r = await apiPublish(server, { topic: cmd.topic, data: { i, by: "server" } });
      // The server is bound by no client rule, only by the namespaces themselves.
      expect(r.status).toBe(ruleOf(cmd.topic) !== null ? 202 : 403);
      if (r.status === 202) note(acceptedFrom, cmd.topic, "server");
      continue;
    }
    const c = sockets.get(cmd.user)!;
    const frame: Record<string, unknown> = { type: cmd.kind, topic: cmd.topic };
    if (cmd.kind === "publish") frame.data = { i, by: cmd.user };
    if (cmd.kind === "subscribe" && cmd.since) frame.since = { seq: 0, epoch: epochs.get(cmd.topic) ?? "unknown" };
    const reply = await c.request(frame);
    const userCaps = capsOf[cmd.user];
    const allowed =
      cmd.kind === "subscribe" ? may(cmd.user, userCaps, cmd.topic, "subscribe") && (!cmd.since || may(cmd.user, userCaps, cmd.topic, "history"))
      : cmd.kind === "unsubscribe" ? true
      : may(cmd.user, userCaps, cmd.topic, cmd.kind);
    expect({ cmd, caps: userCaps, reply: reply.type === "error" ? reply.code : reply.type }).toEqual({ cmd, caps: userCaps, reply: allowed ? (cmd.kind === "presence" ? "presence" : "ack") : "forbidden" });
    if (!allowed) continue;
    if (cmd.kind === "publish") note(acceptedFrom, cmd.topic, cmd.user);
    if (cmd.kind === "subscribe") {
      acked.get(cmd.user)!.add(cmd.topic);
      note(everJoined, cmd.topic, cmd.user);
      epochs.set(cmd.topic, reply.epoch);
    }
    if (cmd.kind === "presence") {
      for (const m of reply.members as { user: { id: string } }[]) expect(everJoined.get(cmd.topic)?.has(m.user.id)).toBe(true);
    }
  }
  // Every frame sent before a pong has arrived before it.
  for (const c of sockets.values()) expect((await c.request({ type: "ping" })).type).toBe("pong");
  for (const [u, c] of sockets) checkReceived(u, capsOf[u], c.frames, acked.get(u)!);
}

/** Everything a socket received on topics: allowed to read, subscribed, and published by someone the server acknowledged. */
function checkReceived(u: UserName, caps: Caps | null, frames: Frame[], acked: Set<string>): void {
  for (const f of frames) {
    if (f.type !== "message" && !f.type.startsWith("presence.")) continue;
    const seen = { user: u, caps, type: f.type, topic: f.topic, readable: may(u, caps, f.topic!, "subscribe"), subscribed: acked.has(f.topic!) };
    expect(seen).toEqual({ ...seen, readable: true, subscribed: true });
    if (f.type === "message") expect({ topic: f.topic, from: f.from, accepted: acceptedFrom.get(f.topic!)?.has(f.from) ?? false }).toEqual({ topic: f.topic, from: f.from, accepted: true });
    else expect(ruleOf(f.topic!)?.presence).toBe(true);
  }
}

async function check(commands: Command[], capsOf: Record<UserName, Caps | null>): Promise<void> {
  try {
    await run(commands, capsOf);
  } finally {
    await closeAll(clients);
    clients.clear();
  }
}

describe("no sequence of frames reads or writes outside the rules (SPEC §5)", () => {
  test("without caps: the namespaces' rules, three users, server publications mixed in", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 5, maxLength: 25 }), (commands) => check(commands, { alice: null, bob: null, carol: null })),
      { numRuns: 20 },
    );
  }, 60_000);

  test("with random caps: exactly the grants, plus the own inbox, within the namespaces' ceilings", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 5, maxLength: 25 }), capsPerUser, (commands, capsOf) => check(commands, capsOf)),
      { numRuns: 20 },
    );
  }, 60_000);
});
