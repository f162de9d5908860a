import { describe, expect, test } from "bun:test";
import { SessionSigner } from "./sessions.ts";

const secret = new TextEncoder().encode("s".repeat(32));
const alice = { id: "alice", name: "alice" };

describe("session and token credentials", () => {
  test("a credential verifies only for its own kind, also when cached", async () => {
    const signer = new SessionSigner(secret);
    const session = await signer.sign("session", alice, "sid1", 60);
    expect((await signer.verify("session", session))?.user).toEqual(alice);
    expect(await signer.verify("token", session)).toBeNull();
    expect((await signer.verify("session", session))?.sid).toBe("sid1"); // from the cache
    expect(await signer.verify("token", session)).toBeNull();
  });

  test("another secret, a tampered or a garbage credential is refused", async () => {
    const signer = new SessionSigner(secret);
    const other = new SessionSigner(new TextEncoder().encode("t".repeat(32)));
    const jwt = await other.sign("session", alice, "sid", 60);
    expect(await signer.verify("session", jwt)).toBeNull();
    const mine = await signer.sign("session", alice, "sid", 60);
    const [h, p, sig] = mine.split(".");
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: "bob", sid: "sid", aud: "session", iss: "switchboard", exp: 9e9 })).toString("base64url")}.${sig}`;
    expect(await signer.verify("session", forged)).toBeNull();
    expect(await signer.verify("session", `${h}.${p}`)).toBeNull();
    expect(await signer.verify("session", "not a jwt")).toBeNull();
  });

  test("an expired credential is refused, also after it was cached", async () => {
    let clock = Date.now();
    const signer = new SessionSigner(secret, () => clock);
    const jwt = await signer.sign("token", alice, "sid", 1);
    expect(await signer.verify("token", jwt)).not.toBeNull();
    clock += 4_000; // inside exp + the 5 s clock tolerance
    expect(await signer.verify("token", jwt)).not.toBeNull();
    clock += 3_000; // past it
    expect(await signer.verify("token", jwt)).toBeNull();
  });

  test("secrets shorter than 32 bytes are refused", () => {
    expect(() => new SessionSigner(new Uint8Array(31))).toThrow("at least 32 bytes");
  });
});
