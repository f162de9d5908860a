/**
 * The presence write ledger against a Presence that fails and recovers (MemoryPresence behind a
 * switch): no ghost member, no leave without its join, retries that stop when they land, and
 * close() leaving no timer behind.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { MemoryPresence } from "../presence/memory.ts";
import type { User } from "../protocol/frames.ts";
import { createLogger } from "../log.ts";
import { PresenceLedger, type LedgerMember, type PresenceChange } from "./presence-ledger.ts";

/** MemoryPresence that can be down (writes rejected, not applied) or stalled (applied, then rejected). */
class FlakyPresence extends MemoryPresence {
  mode: "up" | "down" | "stalled" = "up";
  /** Each write waits this long first (a slow round trip). */
  delayMs = 0;
  writes = 0;

  override async join(topic: string, connectionId: string, user: User): Promise<boolean> {
    return this.write(() => super.join(topic, connectionId, user));
  }

  override async leave(topic: string, connectionId: string, user: User): Promise<boolean> {
    return this.write(() => super.leave(topic, connectionId, user));
  }

  override async members(topic: string) {
    if (this.mode === "down") throw new Error("presence unreachable");
    return super.members(topic);
  }

  private async write(apply: () => Promise<boolean>): Promise<boolean> {
    this.writes += 1;
    if (this.delayMs > 0) await Bun.sleep(this.delayMs);
    if (this.mode === "down") throw new Error("presence unreachable");
    const changed = await apply();
    if (this.mode === "stalled") throw new Error("command timed out");
    return changed;
  }
}

const alice: User = { id: "alice", name: "alice" };
const ledgers: PresenceLedger[] = [];

function setup() {
  const presence = new FlakyPresence();
  const announced: string[] = [];
  const ledger = new PresenceLedger({
    presence,
    announce: (topic: string, type: PresenceChange, user: User) => announced.push(`${type} ${topic} ${user.id}`),
    log: createLogger("silent"),
    retryDelayMs: () => 20,
  });
  ledgers.push(ledger);
  const socket = (id: string): LedgerMember & { isOpen: boolean } => ({ id, user: alice, isOpen: true });
  /** Waits until the retries are done, or fails the test after 2 s. */
  const settled = async () => {
    const deadline = Date.now() + 2000;
    while (ledger.pendingRetries > 0 && Date.now() < deadline) await Bun.sleep(5);
    await Bun.sleep(30);
    expect(ledger.pendingRetries).toBe(0);
  };
  return { presence, announced, ledger, socket, settled };
}

afterEach(() => {
  for (const ledger of ledgers.splice(0)) ledger.close();
});

describe("PresenceLedger", () => {
  test("a join and a leave that land are announced once each, in order", async () => {
    const { presence, announced, ledger, socket } = setup();
    const a = socket("a");
    const b = socket("b");
    await ledger.join(a, "room:x");
    await ledger.join(b, "room:x"); // the user's second socket: no second join
    ledger.leave(a, "room:x");
    ledger.leave(b, "room:x");
    await Bun.sleep(10);
    expect(announced).toEqual(["presence.join room:x alice", "presence.leave room:x alice"]);
    expect(await presence.members("room:x")).toEqual([]);
    expect(ledger.pendingRetries).toBe(0);
  });

  test("a leave while the join is in flight waits for it: join, then leave, no ghost", async () => {
    const { presence, announced, ledger, socket } = setup();
    presence.delayMs = 30;
    const a = socket("a");
    const joined = ledger.join(a, "room:x");
    ledger.leave(a, "room:x");
    await joined;
    await Bun.sleep(60);
    expect(announced).toEqual(["presence.join room:x alice", "presence.leave room:x alice"]);
    expect(await presence.members("room:x")).toEqual([]);
  });

  test("a join that fails is retried until the presence is back, then announced once; retries stop", async () => {
    const { presence, announced, ledger, socket, settled } = setup();
    presence.mode = "down";
    const a = socket("a");
    await ledger.join(a, "room:x");
    expect(ledger.has(a, "room:x")).toBe(true);
    await Bun.sleep(70);
    expect(ledger.pendingRetries).toBe(1);
    expect(announced).toEqual([]);
    presence.mode = "up";
    await settled();
    expect(announced).toEqual(["presence.join room:x alice"]);
    expect((await presence.members("room:x")).map((m) => m.connections)).toEqual([1]);
    const writes = presence.writes;
    await Bun.sleep(60);
    expect(presence.writes).toBe(writes);
  });

  test("a socket that leaves while its join keeps failing leaves no ghost, and no leave is announced without its join", async () => {
    const { presence, announced, ledger, socket, settled } = setup();
    presence.mode = "down";
    const a = socket("a");
    await ledger.join(a, "room:x");
    ledger.leave(a, "room:x");
    a.isOpen = false;
    await Bun.sleep(50);
    presence.mode = "up";
    await settled();
    expect(await presence.members("room:x")).toEqual([]);
    expect(announced).toEqual([]);
  });

  test("a join applied but reported failed (a stalled Redis) is announced by its retry, and its leave after it", async () => {
    const { presence, announced, ledger, socket, settled } = setup();
    presence.mode = "stalled";
    const a = socket("a");
    await ledger.join(a, "room:x");
    presence.mode = "up";
    await settled();
    expect(announced).toEqual(["presence.join room:x alice"]);
    ledger.leave(a, "room:x");
    await Bun.sleep(10);
    expect(announced).toEqual(["presence.join room:x alice", "presence.leave room:x alice"]);
    expect(await presence.members("room:x")).toEqual([]);
  });

  test("a leave applied but reported failed is announced by its retry", async () => {
    const { presence, announced, ledger, socket, settled } = setup();
    const a = socket("a");
    await ledger.join(a, "room:x");
    presence.mode = "stalled";
    ledger.leave(a, "room:x");
    await Bun.sleep(5);
    presence.mode = "up";
    await settled();
    expect(announced).toEqual(["presence.join room:x alice", "presence.leave room:x alice"]);
  });

  test("a socket that changes its mind during the outage ends as it wants: subscribed again → listed", async () => {
    const { presence, announced, ledger, socket, settled } = setup();
    const a = socket("a");
    await ledger.join(a, "room:x");
    presence.mode = "down";
    ledger.leave(a, "room:x");
    await ledger.join(a, "room:x");
    presence.mode = "up";
    await settled();
    expect((await presence.members("room:x")).map((m) => m.user.id)).toEqual(["alice"]);
    expect(announced).toEqual(["presence.join room:x alice"]);
  });

  test("close() stops every retry: no write after it", async () => {
    const { presence, ledger, socket } = setup();
    presence.mode = "down";
    await ledger.join(socket("a"), "room:x");
    await ledger.join(socket("b"), "room:y");
    expect(ledger.pendingRetries).toBe(2);
    ledger.close();
    expect(ledger.pendingRetries).toBe(0);
    const writes = presence.writes;
    await Bun.sleep(60);
    expect(presence.writes).toBe(writes);
  });

  test("a write that never lands is abandoned after maxAttempts", async () => {
    const presence = new FlakyPresence();
    presence.mode = "down";
    const errors: string[] = [];
    const log = { ...createLogger("silent"), error: (msg: string) => void errors.push(msg) };
    const ledger = new PresenceLedger({ presence, announce: () => {}, log, retryDelayMs: () => 5, maxAttempts: 3 });
    ledgers.push(ledger);
    await ledger.join({ id: "a", user: alice, isOpen: true }, "room:x");
    await Bun.sleep(80);
    expect(ledger.pendingRetries).toBe(0);
    expect(presence.writes).toBe(4);
    expect(errors).toEqual(["presence write abandoned"]);
  });
});
