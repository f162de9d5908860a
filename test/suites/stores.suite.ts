/**
 * The Stores conformance suite (src/stores/stores.ts), run on the memory and Redis stores:
 * single-use tickets, revocations, and the fixed-window attempt counter.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Stores } from "../../src/stores/stores.ts";

export type StoresFactory = () => Stores | Promise<Stores>;

/** What was published on a channel since `hear` (a store that publishes revocations' announcements). */
export interface Hearing {
  /** The first `count` messages, in order. */
  messages(count: number): Promise<string[]>;
  stop(): Promise<void>;
}

export interface StoresSuiteOptions {
  /** Listens on a channel the stores publish on; absent: the stores have none (one process). */
  hear?(channel: string): Promise<Hearing>;
}

const grant = { user: { id: "u-alice", name: "alice" }, sid: "sid-1" };
const unique = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

export function describeStores(name: string, factory: StoresFactory, options: StoresSuiteOptions = {}): void {
  describe(`Stores conformance: ${name}`, () => {
    const open: Stores[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()));
    });
    async function stores() {
      const s = await factory();
      open.push(s);
      return s;
    }

    describe("tickets", () => {
      test("a ticket is unguessable and redeems to its grant once", async () => {
        const { tickets } = await stores();
        const ticket = await tickets.issue(grant, 30);
        expect(ticket.length).toBeGreaterThanOrEqual(32);
        expect(await tickets.issue(grant, 30)).not.toBe(ticket);
        expect(await tickets.redeem(ticket)).toEqual(grant);
        expect(await tickets.redeem(ticket)).toBeNull();
      });

      test("an unknown ticket redeems to null", async () => {
        const { tickets } = await stores();
        expect(await tickets.redeem("not-a-ticket")).toBeNull();
      });

      test("50 concurrent redemptions of one ticket: exactly one succeeds", async () => {
        const { tickets } = await stores();
        const ticket = await tickets.issue(grant, 30);
        const results = await Promise.all(Array.from({ length: 50 }, () => tickets.redeem(ticket)));
        expect(results.filter((r) => r !== null)).toEqual([grant]);
      });
    });

    describe("revocations", () => {
      test("a revocation's announcement is published in the write's transaction, or left to the caller", async () => {
        const { revocations, userRevocations } = await stores();
        const channel = unique("announce");
        const hearing = await options.hear?.(channel);
        try {
          const [sid, user] = [unique("sid"), unique("user")];
          const announced = [await revocations.revoke(sid, 60, { channel, message: "session" }), await userRevocations.revokeUser(user, 1_000, { channel, message: "user" })];
          expect(await revocations.isRevoked(sid)).toBe(true);
          expect(await userRevocations.isRevoked(user, 1_000)).toBe(true);
          if (hearing === undefined) expect(announced).toEqual([false, false]);
          else {
            expect(announced).toEqual([true, true]);
            // Two transactions, each announcing on its own: on a cluster their keys may live on two
            // primaries, whose PUBLISHes reach a subscriber over the cluster bus in either order.
            expect((await hearing.messages(2)).sort()).toEqual(["session", "user"]);
          }
        } finally {
          await hearing?.stop();
        }
      });

      test("a revoked session is revoked; others are not", async () => {
        const { revocations } = await stores();
        const [sid, other] = [unique("sid"), unique("sid")];
        expect(await revocations.isRevoked(sid)).toBe(false);
        await revocations.revoke(sid, 60);
        expect(await revocations.isRevoked(sid)).toBe(true);
        expect(await revocations.isRevoked(other)).toBe(false);
      });

      test("checks asked together (the handshakes of one moment) each get their own answer", async () => {
        const { revocations, userRevocations } = await stores();
        const sids = Array.from({ length: 24 }, () => unique("sid"));
        const users = Array.from({ length: 8 }, () => unique("u"));
        await Promise.all(sids.filter((_, i) => i % 3 === 0).map((sid) => revocations.revoke(sid, 60)));
        await Promise.all(users.filter((_, i) => i % 2 === 0).map((user) => userRevocations.revokeUser(user, 1_000)));
        const answers = await Promise.all([...sids.map((sid) => revocations.isRevoked(sid)), ...users.map((user) => userRevocations.isRevoked(user, 1_000))]);
        expect(answers).toEqual([...sids.map((_, i) => i % 3 === 0), ...users.map((_, i) => i % 2 === 0)]);
      });

      test("an app token's session id may hold any characters (spaces, newlines, e2, 🔑): asked together, each answer is its own", async () => {
        const { revocations } = await stores();
        const base = unique("app:");
        const sids = [`${base} a b`, `${base}\nz1 e1`, `${base}\u00e9\u{1f511}`, `${base}`, `${base}\n`];
        await Promise.all([revocations.revoke(sids[1]!, 60), revocations.revoke(sids[2]!, 60)]);
        expect(await Promise.all(sids.map((sid) => revocations.isRevoked(sid)))).toEqual([false, true, true, false, false]);
      });
    });

    describe("a credential's two checks at once (credentialRevocations)", () => {
      test("says what refuses each credential asked together: its session, its user by issue time, or nothing", async () => {
        const { revocations, userRevocations, credentialRevocations } = await stores();
        const sids = Array.from({ length: 12 }, () => unique("sid"));
        const users = Array.from({ length: 12 }, () => unique("u"));
        await Promise.all(sids.filter((_, i) => i % 3 === 0).map((sid) => revocations.revoke(sid, 60)));
        await Promise.all(users.filter((_, i) => i % 2 === 0).map((user) => userRevocations.revokeUser(user, 1_000)));
        // Issued at 1,000 (refused by its user's revoke) or 1,001 (not): every other pair of the 12.
        const iat = (i: number) => (i % 4 < 2 ? 1_000 : 1_001);
        const answers = await Promise.all(sids.map((sid, i) => credentialRevocations.revokedBy(sid, users[i]!, iat(i))));
        const expected = sids.map((_, i) => (i % 3 === 0 ? "session" : i % 2 === 0 && iat(i) === 1_000 ? "user" : null));
        expect(answers).toEqual(expected);
      });

      test("a credential without a session is checked by its user alone", async () => {
        const { userRevocations, credentialRevocations } = await stores();
        const [user, other] = [unique("u"), unique("u")];
        await userRevocations.revokeUser(user, 1_000);
        expect(await Promise.all([credentialRevocations.revokedBy(null, user, 1_000), credentialRevocations.revokedBy(null, other, 1_000)])).toEqual(["user", null]);
      });

      test("session ids and user ids of any characters answer as their own", async () => {
        const { revocations, userRevocations, credentialRevocations } = await stores();
        const base = unique("app:");
        const sids = [`${base} a\nb`, `${base}\u00e9\u{1f511}`, `${base}\n`];
        const users = [`auth0|${base}@example.com`, `${base} \n`, `${base}\u{1f511}`];
        await Promise.all([revocations.revoke(sids[1]!, 60), userRevocations.revokeUser(users[2]!, 2_000)]);
        expect(await Promise.all(sids.map((sid, i) => credentialRevocations.revokedBy(sid, users[i]!, 1_500)))).toEqual([null, "session", "user"]);
      });
    });

    describe("user revocations", () => {
      test("credentials issued at or before the revoke's second are refused; later ones and other users are not", async () => {
        const { userRevocations } = await stores();
        const [user, other] = [unique("u"), unique("u")];
        expect(await userRevocations.isRevoked(user, 1_000)).toBe(false);
        await userRevocations.revokeUser(user, 1_000);
        expect(await userRevocations.isRevoked(user, 999)).toBe(true);
        expect(await userRevocations.isRevoked(user, 1_000)).toBe(true);
        expect(await userRevocations.isRevoked(user, 1_001)).toBe(false);
        expect(await userRevocations.isRevoked(other, 999)).toBe(false);
      });

      test("a later revoke wins; an earlier one never shortens it", async () => {
        const { userRevocations } = await stores();
        const user = unique("u");
        await userRevocations.revokeUser(user, 2_000);
        await userRevocations.revokeUser(user, 1_500);
        expect(await userRevocations.isRevoked(user, 1_800)).toBe(true);
        await userRevocations.revokeUser(user, 3_000);
        expect(await userRevocations.isRevoked(user, 2_500)).toBe(true);
        expect(await userRevocations.isRevoked(user, 3_001)).toBe(false);
      });

      test("revokedSince lists the users revoked at or after a second, with their latest revoke", async () => {
        const { userRevocations } = await stores();
        const base = 2_000_000_000 + Math.floor(Math.random() * 1_000_000);
        const [early, late] = [unique("u"), unique("u")];
        await userRevocations.revokeUser(early, base);
        await userRevocations.revokeUser(late, base + 10);
        const since = await userRevocations.revokedSince(base + 5);
        expect(since.get(late)).toBe(base + 10);
        expect(since.has(early)).toBe(false);
        expect((await userRevocations.revokedSince(base)).get(early)).toBe(base);
      });

      test("revokedSince lists the users of every shard (64 users revoked together), each answered on its own", async () => {
        const { userRevocations } = await stores();
        const atS = Math.floor(Date.now() / 1000);
        const users = Array.from({ length: 64 }, () => unique("every"));
        await Promise.all(users.map((user, i) => userRevocations.revokeUser(user, atS + (i % 3))));
        const since = await userRevocations.revokedSince(atS);
        expect(users.filter((user, i) => since.get(user) !== atS + (i % 3))).toEqual([]);
        expect(await Promise.all(users.map((user) => userRevocations.isRevoked(user, atS + 2)))).toEqual(users.map((_, i) => i % 3 === 2));
      });

      test("user ids of identity providers (auth0|…, e-mail) work", async () => {
        const { userRevocations } = await stores();
        const user = `auth0|${unique("x")}@example.com`;
        await userRevocations.revokeUser(user, Math.floor(Date.now() / 1000));
        expect(await userRevocations.isRevoked(user, Math.floor(Date.now() / 1000) - 60)).toBe(true);
      });
    });

    test("expiry: tickets and revocations end with their TTL; attempts keep a fixed window from the first failure", async () => {
      const { tickets, revocations, attempts } = await stores();
      const ticket = await tickets.issue(grant, 1);
      const sid = unique("sid");
      await revocations.revoke(sid, 1);
      const key = unique("bob");
      await attempts.fail(key, 2);
      await Bun.sleep(1100);
      expect(await tickets.redeem(ticket)).toBeNull();
      expect(await revocations.isRevoked(sid)).toBe(false);
      const late = await attempts.fail(key, 2);
      expect(late.count).toBe(2);
      expect(late.resetInS).toBe(1); // not extended by the later failure
      await Bun.sleep(1000);
      expect(await attempts.get(key)).toEqual({ count: 0, resetInS: 0 });
      expect((await attempts.fail(key, 2)).count).toBe(1);
    });

    describe("attempts", () => {
      test("no window: count 0, resetInS 0", async () => {
        const { attempts } = await stores();
        expect(await attempts.get(unique("k"))).toEqual({ count: 0, resetInS: 0 });
      });

      test("failures count within one window that opens at the first failure", async () => {
        const { attempts } = await stores();
        const key = unique("alice|127.0.0.1");
        expect(await attempts.fail(key, 60)).toEqual({ count: 1, resetInS: 60 });
        const second = await attempts.fail(key, 60);
        expect(second.count).toBe(2);
        expect(second.resetInS).toBeGreaterThanOrEqual(59);
        expect(second.resetInS).toBeLessThanOrEqual(60);
        const now = await attempts.get(key);
        expect(now.count).toBe(2);
        expect(now.resetInS).toBeGreaterThanOrEqual(59);
        expect((await attempts.get(unique("other"))).count).toBe(0);
      });

      test("concurrent failures are all counted", async () => {
        const { attempts } = await stores();
        const key = unique("burst");
        await Promise.all(Array.from({ length: 30 }, () => attempts.fail(key, 60)));
        expect((await attempts.get(key)).count).toBe(30);
      });

      test("release takes back one counted attempt inside the window, never below 0, never outside it", async () => {
        const { attempts } = await stores();
        const key = unique("release");
        await attempts.release(key);
        expect(await attempts.get(key)).toEqual({ count: 0, resetInS: 0 });
        await attempts.fail(key, 60);
        await attempts.fail(key, 60);
        await attempts.release(key);
        expect((await attempts.get(key)).count).toBe(1);
        await attempts.release(key);
        await attempts.release(key);
        expect((await attempts.get(key)).count).toBe(0);
        const next = await attempts.fail(key, 60);
        expect(next.count).toBe(1);
        expect(next.resetInS).toBeGreaterThanOrEqual(59); // the window kept its TTL through the releases
      });
    });
  });
}
