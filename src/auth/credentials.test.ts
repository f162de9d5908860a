/**
 * The one credential check: sources in order, the first presented credential decides alone,
 * revocation applies to every source, and nothing presented is anonymous (null), not refused.
 */
import { describe, expect, test } from "bun:test";
import { memoryStores } from "../stores/memory.ts";
import { SessionSigner } from "./sessions.ts";
import { createCredentials } from "./create-credentials.ts";
import { COOKIE_NAME, SECURE_COOKIE_NAME } from "./cookie.ts";
import { bearerOf, sameSecret } from "./bearer.ts";
import { RevocationView } from "./revocation-view.ts";

const alice = { id: "alice", name: "alice" };

async function setup() {
  const stores = memoryStores();
  const signer = new SessionSigner(new Uint8Array(32).fill(7));
  const refused: string[] = [];
  const credentials = createCredentials(signer, stores, (reason) => refused.push(reason));
  const session = await signer.sign("session", alice, "s1", 60);
  const token = await signer.sign("token", alice, "s2", 60);
  return { stores, signer, credentials, refused, session, token };
}

describe("Credentials.identify", () => {
  test("each built-in source yields its identity, with expiry and issue time where the credential has them", async () => {
    const { credentials, stores, session, token } = await setup();
    const byCookie = await credentials.identify({ cookie: `other=1; ${COOKIE_NAME}=${session}` });
    expect(byCookie).toMatchObject({ ok: true, identity: { user: alice, sid: "s1", via: "cookie", caps: null } });
    if (byCookie?.ok !== true) throw new Error("unreachable");
    expect(byCookie.identity.exp! - byCookie.identity.iat!).toBe(60);
    expect(await credentials.identify({ token })).toMatchObject({ ok: true, identity: { sid: "s2", via: "token" } });
    const ticket = await stores.tickets.issue({ user: alice, sid: "s1", caps: { "room:*": ["subscribe"] } }, 30);
    expect(await credentials.identify({ ticket })).toMatchObject({ ok: true, identity: { via: "ticket", exp: null, caps: { "room:*": ["subscribe"] } } });
  });

  test("nothing presented is anonymous; a presented credential decides alone, even with a good one beside it", async () => {
    const { credentials, session } = await setup();
    expect(await credentials.identify({})).toBeNull();
    expect(await credentials.identify({ cookie: "unrelated=1" })).toBeNull();
    expect(await credentials.identify({ ticket: "nope", cookie: `${COOKIE_NAME}=${session}` })).toEqual({ ok: false, reason: "bad_ticket", message: "unknown, expired or used ticket" });
    expect(await credentials.identify({ ticket: "" })).toMatchObject({ ok: false, reason: "bad_ticket" });
    expect(await credentials.identify({ token: "", cookie: `${COOKIE_NAME}=${session}` })).toMatchObject({ ok: false, reason: "bad_token" });
  });

  test("a credential of one kind does not stand for another; a ticket is single use", async () => {
    const { credentials, stores, session, token } = await setup();
    expect(await credentials.identify({ token: session })).toMatchObject({ ok: false, reason: "bad_token" });
    expect(await credentials.identify({ cookie: `${SECURE_COOKIE_NAME}=${token}` })).toMatchObject({ ok: false, reason: "bad_cookie" });
    const ticket = await stores.tickets.issue({ user: alice, sid: "s1" }, 30);
    expect((await credentials.identify({ ticket }))?.ok).toBe(true);
    expect((await credentials.identify({ ticket }))?.ok).toBe(false);
  });

  test("a revoked session is refused by every source that carries it", async () => {
    const { credentials, stores, signer, session } = await setup();
    const ticket = await stores.tickets.issue({ user: alice, sid: "s1" }, 30);
    const token = await signer.sign("token", alice, "s1", 60);
    await stores.revocations.revoke("s1", 60);
    expect(await credentials.identify({ cookie: `${COOKIE_NAME}=${session}` })).toMatchObject({ ok: false, reason: "bad_cookie" });
    expect(await credentials.identify({ ticket })).toMatchObject({ ok: false, reason: "bad_ticket" });
    expect(await credentials.identify({ token })).toMatchObject({ ok: false, reason: "bad_token" });
  });

  test("a revoked user (SPEC §6 revoke) is refused by every source for credentials issued up to the revoke's second", async () => {
    const stores = memoryStores();
    let nowMs = 1_800_000_000_000;
    const signer = new SessionSigner(new Uint8Array(32).fill(7), () => nowMs);
    const credentials = createCredentials(signer, stores);
    const atS = nowMs / 1000;
    const old = {
      cookie: `${COOKIE_NAME}=${await signer.sign("session", alice, "s1", 600)}`,
      token: await signer.sign("token", alice, "s2", 600),
      ticket: await stores.tickets.issue({ user: alice, sid: "s1", iat: atS }, 30),
    };
    const undated = await stores.tickets.issue({ user: alice, sid: "s3" }, 30);
    const bob = await signer.sign("token", { id: "bob", name: "bob" }, "s4", 600);
    await stores.userRevocations.revokeUser("alice", atS);
    for (const presented of [{ cookie: old.cookie }, { token: old.token }, { ticket: old.ticket }, { ticket: undated }]) {
      expect({ presented, ok: (await credentials.identify(presented))?.ok }).toEqual({ presented, ok: false });
    }
    expect((await credentials.identify({ token: bob }))?.ok).toBe(true);
    nowMs += 1000; // issued in the next second: accepted
    expect((await credentials.identify({ token: await signer.sign("token", alice, "s5", 600) }))?.ok).toBe(true);
    expect((await credentials.identify({ ticket: await stores.tickets.issue({ user: alice, sid: "s1", iat: atS + 1 }, 30) }))?.ok).toBe(true);
    await stores.close();
  });

  test("identifyNow: the same answer without a promise once the cookie was verified and its check needs no read; else undefined", async () => {
    const { stores, signer, session, token } = await setup();
    const fence = { windowMs: 5, continuity: () => 1, current: () => true, wanted: () => {}, announcement: () => ({ channel: "c", message: "" }) };
    const view = new RevocationView(stores.revocations, stores.credentialRevocations, fence);
    const credentials = createCredentials(signer, { tickets: stores.tickets, credentialRevocations: view });
    const cookie = `${COOKIE_NAME}=${session}`;
    expect(credentials.identifyNow({})).toBeNull();
    expect(credentials.identifyNow({ cookie: "unrelated=1" })).toBeNull();
    expect(credentials.identifyNow({ cookie })).toBeUndefined(); // not verified here yet
    expect(await credentials.identify({ cookie })).toMatchObject({ ok: true });
    expect(credentials.identifyNow({ cookie })).toEqual(await credentials.identify({ cookie }));
    expect(credentials.identifyNow({ cookie })).toMatchObject({ ok: true, identity: { user: alice, sid: "s1", via: "cookie" } });
    // The first presented credential decides: a ticket or a token beside the cookie is left to identify.
    expect(credentials.identifyNow({ ticket: "nope", cookie })).toBeUndefined();
    expect(credentials.identifyNow({ token, cookie })).toBeUndefined();
    view.heard("s1");
    expect(credentials.identifyNow({ cookie })).toEqual({ ok: false, reason: "bad_cookie", message: "invalid or revoked session" });
    // Without a fence every check is a read: never answered here.
    const plain = createCredentials(signer, { tickets: stores.tickets, credentialRevocations: new RevocationView(stores.revocations, stores.credentialRevocations) });
    expect(await plain.identify({ cookie: `${COOKIE_NAME}=${await signer.sign("session", alice, "s9", 60)}` })).toMatchObject({ ok: true });
    expect(plain.identifyNow({ cookie: `${COOKIE_NAME}=${session}` })).toBeUndefined();
    await stores.close();
  });

  test("refused() reaches the hook without the credential", async () => {
    const { credentials, refused } = await setup();
    credentials.refused("origin");
    expect(refused).toEqual(["origin"]);
  });
});

describe("bearer headers and secrets", () => {
  test("bearerOf reads the credential of a Bearer header, any case of the scheme", () => {
    expect(bearerOf("Bearer abc")).toBe("abc");
    expect(bearerOf("bearer  abc")).toBe("abc");
    expect(bearerOf("Basic abc")).toBeUndefined();
    expect(bearerOf(undefined)).toBeUndefined();
  });

  test("sameSecret is true only for the exact secret", () => {
    expect(sameSecret("k".repeat(40), "k".repeat(40))).toBe(true);
    expect(sameSecret("k".repeat(39), "k".repeat(40))).toBe(false);
    expect(sameSecret("K".repeat(40), "k".repeat(40))).toBe(false);
    expect(sameSecret(undefined, "k")).toBe(false);
  });
});
