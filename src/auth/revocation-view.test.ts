/**
 * The view's rules for keeping "not revoked" behind the fence, with the orderings a real deployment
 * produces only by chance: a revocation heard while a read is on its way, a control link that
 * broke while a read was out, a fence that stopped being current. The store answers when the test
 * says so; test/revocation-fence.test.ts holds the same rules from outside, across two machines.
 */
import { describe, expect, test } from "bun:test";
import { RevocationView } from "./revocation-view.ts";
import type { ControlFence, ControlMessage } from "../broker/broker.ts";
import type { CredentialRevocationStore, RevocationStore, RevokedBy } from "../stores/stores.ts";

class Fence implements ControlFence {
  windowMs = 5;
  link: number | null = 1;
  fresh = true;
  continuity = () => this.link;
  current = () => this.fresh;
  wants = 0;
  wanted = () => void this.wants++;
  announcement = (message: ControlMessage) => ({ channel: "control", message: JSON.stringify(message) });
}

/** A store whose reads wait until `answer` is called; counts the reads sent. */
class HeldStore implements RevocationStore, CredentialRevocationStore {
  sent = 0;
  private waiting: ((by: RevokedBy) => void)[] = [];
  async revoke(): Promise<boolean> {
    return false;
  }
  async isRevoked(): Promise<boolean> {
    return false;
  }
  revokedBy(): Promise<RevokedBy> {
    this.sent++;
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  answer(by: RevokedBy = null): void {
    for (const resolve of this.waiting.splice(0)) resolve(by);
  }
}

function setup() {
  const store = new HeldStore();
  const fence = new Fence();
  return { store, fence, view: new RevocationView(store, store, fence) };
}

/** Asks once, answering any read with `by`. */
async function ask(view: RevocationView, store: HeldStore, sid = "s1", user = "u1", iat = 100, by: RevokedBy = null): Promise<RevokedBy> {
  const answer = view.revokedBy(sid, user, iat);
  store.answer(by);
  return answer;
}

describe("RevocationView behind a fence", () => {
  test("a read's \"not revoked\" is reused while the fence is current and the link unbroken", async () => {
    const { store, view } = setup();
    expect(await ask(view, store)).toBeNull();
    expect(await ask(view, store)).toBeNull();
    expect(await ask(view, store)).toBeNull();
    expect(store.sent).toBe(1);
    expect(view.kept).toBe(2);
  });

  test("every check of a session not known revoked tells the fence it is wanted (its canaries run while checks come)", async () => {
    const { store, fence, view } = setup();
    await ask(view, store); // a read: the first check of the session
    await ask(view, store); // kept
    view.heard("s2");
    await ask(view, store, "s2"); // known revoked: no fence needed
    fence.fresh = false;
    await ask(view, store); // the fence lapsed: a read, and the canaries start again
    expect(fence.wants).toBe(3);
  });

  test("only for the same user and issue time", async () => {
    const { store, view } = setup();
    await ask(view, store, "s1", "u1", 100);
    await ask(view, store, "s1", "u2", 100);
    await ask(view, store, "s1", "u2", 101);
    expect(store.sent).toBe(3);
  });

  test("not while the fence is not current, nor after the link broke", async () => {
    const { store, fence, view } = setup();
    await ask(view, store);
    fence.fresh = false;
    await ask(view, store);
    expect(store.sent).toBe(2);
    fence.fresh = true;
    fence.link = 2;
    await ask(view, store);
    expect(store.sent).toBe(3);
    // Kept again from that read, in the new stretch.
    await ask(view, store);
    expect(store.sent).toBe(3);
  });

  test("a read sent while the link was down is never kept", async () => {
    const { store, fence, view } = setup();
    fence.link = null;
    const pending = view.revokedBy("s1", "u1", 100);
    fence.link = 1;
    store.answer(null);
    expect(await pending).toBeNull();
    await ask(view, store);
    expect(store.sent).toBe(2);
  });

  test("a read whose link broke before it answered is not kept", async () => {
    const { store, fence, view } = setup();
    const pending = view.revokedBy("s1", "u1", 100);
    fence.link = 2;
    store.answer(null);
    await pending;
    await ask(view, store);
    expect(store.sent).toBe(2);
  });

  test("a revocation heard while a read was on its way: that read is not kept (any session or user)", async () => {
    const { store, view } = setup();
    const first = view.revokedBy("s1", "u1", 100);
    view.heard("other-session");
    store.answer(null);
    await first;
    const second = view.revokedBy("s1", "u1", 100);
    view.heardUser("other-user");
    store.answer(null);
    await second;
    await ask(view, store);
    expect(store.sent).toBe(3);
    await ask(view, store);
    expect(store.sent).toBe(3);
  });

  test("hearing a session's revocation forgets it and answers \"session\" from then on", async () => {
    const { store, view } = setup();
    await ask(view, store);
    view.heard("s1");
    expect(await view.revokedBy("s1", "u1", 100)).toBe("session");
    expect(store.sent).toBe(1);
  });

  test("hearing a user's revocation forgets that user's sessions only", async () => {
    const { store, view } = setup();
    await ask(view, store, "s1", "u1");
    await ask(view, store, "s2", "u2");
    view.heardUser("u1");
    await ask(view, store, "s2", "u2");
    expect(store.sent).toBe(2);
    expect(await ask(view, store, "s1", "u1", 100, "user")).toBe("user");
    expect(store.sent).toBe(3);
  });

  test("a revoker waits the fence's window; without a fence nothing is kept and nobody waits", async () => {
    const { fence, view } = setup();
    const started = performance.now();
    await view.afterRevocation();
    expect(performance.now() - started).toBeGreaterThanOrEqual(fence.windowMs - 1);

    const store = new HeldStore();
    const plain = new RevocationView(store, store);
    await ask(plain, store);
    await ask(plain, store);
    expect(store.sent).toBe(2);
    expect(plain.kept).toBe(0);
    await plain.afterRevocation();
  });

  test("revokedByNow answers only what needs no read, by the same rules; anything else is left to revokedBy", async () => {
    const { store, fence, view } = setup();
    expect(view.revokedByNow("s1", "u1", 100)).toBeUndefined(); // never read
    await ask(view, store);
    expect(view.revokedByNow("s1", "u1", 100)).toBeNull(); // kept
    expect(view.revokedByNow("s1", "u2", 100)).toBeUndefined();
    expect(view.revokedByNow("s1", "u1", 101)).toBeUndefined();
    expect(view.revokedByNow(null, "u1", 100)).toBeUndefined(); // no session: the user is always read
    fence.fresh = false;
    expect(view.revokedByNow("s1", "u1", 100)).toBeUndefined();
    fence.fresh = true;
    fence.link = 2;
    expect(view.revokedByNow("s1", "u1", 100)).toBeUndefined();
    fence.link = 1;
    expect(view.revokedByNow("s1", "u1", 100)).toBeNull();
    view.heardUser("u1");
    expect(view.revokedByNow("s1", "u1", 100)).toBeUndefined();
    view.heard("s1");
    expect(view.revokedByNow("s1", "u1", 100)).toBe("session");
    expect(store.sent).toBe(1);
    expect(new RevocationView(store, store).revokedByNow("s1", "u1", 100)).toBeUndefined(); // no fence: always a read
  });
});
