/**
 * SPEC §4 app tokens, at the verifier (src/auth/app-tokens.ts) against a real JWKS endpoint with
 * real jose keys: algorithms, claims, expiry, issuer/audience, refusals that must never pass, and
 * the key set's behaviour under rotation, floods of unknown `kid`s and a provider that fails.
 * The clock is the verifier's own option, so "30 s later" takes no 30 s.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { SignJWT, exportSPKI } from "jose";
import { AppTokenVerifier, MAX_TOKEN_CHARS } from "../src/auth/app-tokens.ts";
import type { Logger } from "../src/log.ts";
import { AUDIENCE, ISSUER, makeKey, serveJwks, signAppToken, signHsToken, unsignedToken, type JwksServer } from "./support/jwks.ts";

const SECRET = "app-shared-secret-0123456789abcdef-0123456789";

function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log: Logger & { lines: string[] } = {
    lines,
    debug: (m, f) => lines.push(JSON.stringify({ level: "debug", m, ...f })),
    info: (m, f) => lines.push(JSON.stringify({ level: "info", m, ...f })),
    warn: (m, f) => lines.push(JSON.stringify({ level: "warn", m, ...f })),
    error: (m, f) => lines.push(JSON.stringify({ level: "error", m, ...f })),
    child: () => log,
  };
  return log;
}

const servers: JwksServer[] = [];
afterAll(() => servers.forEach((s) => s.stop()));

function settings(overrides: Record<string, string | undefined> = {}) {
  return {
    authJwksUrl: undefined as string | undefined,
    authJwtSecret: undefined as string | undefined,
    authIssuer: ISSUER as string | undefined,
    authAudience: AUDIENCE as string | undefined,
    authUserClaim: "sub",
    authNameClaim: "name",
    authCapsClaim: "caps",
    ...overrides,
  };
}

async function withJwks(keysCount = 1, overrides: Record<string, string | undefined> = {}) {
  const keys = await Promise.all(Array.from({ length: keysCount }, () => makeKey("RS256")));
  const jwks = serveJwks(keys);
  servers.push(jwks);
  let clock = Date.now();
  const log = recordingLog();
  const verifier = new AppTokenVerifier(settings({ authJwksUrl: jwks.url, ...overrides }), { log, now: () => clock });
  await verifier.start();
  return { jwks, keys, verifier, log, advance: (ms: number) => (clock += ms) };
}

describe("§4 AUTH_JWKS_URL: algorithms and claims", () => {
  test("RS256, PS256, ES256 and EdDSA tokens from the key set are accepted", async () => {
    const keys = await Promise.all((["RS256", "PS256", "ES256", "EdDSA"] as const).map((alg) => makeKey(alg)));
    const jwks = serveJwks(keys);
    servers.push(jwks);
    const verifier = new AppTokenVerifier(settings({ authJwksUrl: jwks.url }), { log: recordingLog() });
    await verifier.start();
    for (const key of keys) {
      const result = await verifier.verify(await signAppToken(key, { claims: { name: "Ana" } }));
      expect(result).toMatchObject({ ok: true, identity: { user: { id: "auth0|64f1c2", name: "Ana" }, via: "app-token", caps: undefined } });
    }
    expect(jwks.requests).toBe(1);
  });

  test("a claim whose whole name matches comes first, then a dotted path; the name falls back to the id", async () => {
    const { keys, jwks } = await withJwks(1, {});
    const caps = { "room:team-42": ["subscribe", "publish"] };
    const whole = await signAppToken(keys[0]!, { claims: { caps: undefined, "https://example.com/caps": caps } });
    const v2 = new AppTokenVerifier(settings({ authJwksUrl: jwks.url, authCapsClaim: "https://example.com/caps" }), { log: recordingLog() });
    expect(await v2.verify(whole)).toMatchObject({ ok: true, identity: { caps, user: { name: "auth0|64f1c2" } } });

    const nested = await signAppToken(keys[0]!, { sub: "ignored", claims: { app: { uid: "google-oauth2|1234", caps, profile: { display: "Bo" } } } });
    const v3 = new AppTokenVerifier(settings({ authJwksUrl: jwks.url, authUserClaim: "app.uid", authNameClaim: "app.profile.display", authCapsClaim: "app.caps" }), { log: recordingLog() });
    expect(await v3.verify(nested)).toMatchObject({ ok: true, identity: { user: { id: "google-oauth2|1234", name: "Bo" }, caps } });
  });

  test("caps that break the caps schema, and ids that cannot be an inbox, are refused", async () => {
    const { keys, verifier } = await withJwks();
    const badCaps = await verifier.verify(await signAppToken(keys[0]!, { claims: { caps: { "room:x": ["fly"] } } }));
    expect(badCaps).toMatchObject({ ok: false });
    expect((badCaps as { reason: string }).reason).toContain("caps");
    expect(await verifier.verify(await signAppToken(keys[0]!, { sub: "has space" }))).toMatchObject({ ok: false });
    expect(await verifier.verify(await signAppToken(keys[0]!, { sub: "x".repeat(124) }))).toMatchObject({ ok: false });
    expect(await verifier.verify(await signAppToken(keys[0]!, { sub: "ana@example.com" }))).toMatchObject({ ok: true });
  });

  test("exp is required; 5 s of clock tolerance, not more; issuer and audience must match", async () => {
    const { keys, verifier } = await withJwks();
    const key = keys[0]!;
    expect(await verifier.verify(await signAppToken(key, { expiresIn: null }))).toEqual({ ok: false, reason: "token without exp" });
    expect(await verifier.verify(await signAppToken(key, { expiresIn: -3 }))).toMatchObject({ ok: true });
    expect(await verifier.verify(await signAppToken(key, { expiresIn: -10 }))).toEqual({ ok: false, reason: "token expired" });
    expect(await verifier.verify(await signAppToken(key, { issuer: "https://other.example/" }))).toEqual({ ok: false, reason: "wrong issuer" });
    expect(await verifier.verify(await signAppToken(key, { audience: "another-app" }))).toEqual({ ok: false, reason: "wrong audience" });
    expect(await verifier.verify(await signAppToken(key, { issuer: null }))).toMatchObject({ ok: false });
  });
});

describe("§4 refusals that never pass", () => {
  test("forged (right kid, wrong key), alg:none, HS256 with the public key as secret, garbage, oversized", async () => {
    const { keys, verifier, jwks } = await withJwks();
    const impostor = await makeKey("RS256", keys[0]!.kid);
    expect(await verifier.verify(await signAppToken(impostor))).toEqual({ ok: false, reason: "bad signature" });
    const nowS = Math.floor(Date.now() / 1000);
    expect(await verifier.verify(unsignedToken({ sub: "admin", iss: ISSUER, aud: AUDIENCE, exp: nowS + 60 }))).toMatchObject({ ok: false, reason: "alg none not accepted" });
    // HS/RS confusion: the attacker knows the public key and uses it as an HMAC secret.
    const pem = await exportSPKI((await crypto.subtle.importKey("jwk", keys[0]!.publicJwk as JsonWebKey, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, true, ["verify"])));
    const confused = await signHsToken(pem, { issuer: ISSUER, audience: AUDIENCE, kid: keys[0]!.kid });
    expect(await verifier.verify(confused)).toEqual({ ok: false, reason: "alg HS256 not accepted" });
    expect(await verifier.verify("not.a.jwt")).toEqual({ ok: false, reason: "malformed token" });
    const before = jwks.requests;
    const huge = await signAppToken(keys[0]!, { claims: { pad: "x".repeat(MAX_TOKEN_CHARS) } });
    expect(await verifier.verify(huge)).toEqual({ ok: false, reason: "token too large" });
    expect(jwks.requests).toBe(before);
  });

  test("AUTH_JWT_SECRET: HS256 from the app is accepted; another secret or an RS256 token is not", async () => {
    const log = recordingLog();
    const verifier = new AppTokenVerifier(settings({ authJwtSecret: SECRET, authIssuer: undefined, authAudience: undefined }), { log });
    expect(await verifier.verify(await signHsToken(SECRET, { sub: "u-7", claims: { name: "Seven" } }))).toMatchObject({ ok: true, identity: { user: { id: "u-7", name: "Seven" } } });
    expect(await verifier.verify(await signHsToken("another-secret-0123456789abcdef-0123456789", { sub: "u-7" }))).toEqual({ ok: false, reason: "bad signature" });
    expect(await verifier.verify(await signAppToken(await makeKey("RS256")))).toEqual({ ok: false, reason: "alg RS256 not accepted" });
  });
});

describe("§4 + §6 revoke: a token without iat", () => {
  test("has no issue time (iat null), so a revocation of its user refuses it (fail closed)", async () => {
    const verifier = new AppTokenVerifier(settings({ authJwtSecret: SECRET, authIssuer: undefined, authAudience: undefined }), { log: recordingLog() });
    const undated = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject("u-8")
      .setExpirationTime(Math.floor(Date.now() / 1000) + 300)
      .sign(new TextEncoder().encode(SECRET));
    const result = await verifier.verify(undated);
    expect(result.ok).toBe(true);
    if (!result.ok) throw new Error("unreachable");
    expect(result.identity.iat).toBeNull();
    expect((await verifier.verify(await signHsToken(SECRET, { sub: "u-8" }))) ).toMatchObject({ ok: true, identity: { iat: expect.any(Number) } });
  });
});

describe("§4 the key set: rotation, unknown-kid floods, a provider that fails", () => {
  test("a key rotated in is accepted without a restart; a flood of bogus kids then costs no request for 30 s, one after", async () => {
    const { jwks, keys, verifier, advance } = await withJwks();
    expect(jwks.requests).toBe(1);
    const rotated = await makeKey("ES256");
    jwks.keys = [keys[0]!, rotated];
    expect(await verifier.verify(await signAppToken(rotated))).toMatchObject({ ok: true });
    expect(jwks.requests).toBe(2);
    const flood = await Promise.all(Array.from({ length: 300 }, (_, i) => signAppToken(keys[0]!, { kid: `bogus-${i}` })));
    const results = await Promise.all(flood.map((t) => verifier.verify(t)));
    expect(results.every((r) => !r.ok && r.reason === "unknown key")).toBe(true);
    expect(jwks.requests).toBe(2);
    // Old and rotated keys keep working during the flood.
    expect(await verifier.verify(await signAppToken(keys[0]!))).toMatchObject({ ok: true });
    advance(30_500);
    await Promise.all(flood.slice(0, 50).map((t) => verifier.verify(t)));
    expect(jwks.requests).toBe(3);
  });

  test("a key removed from the set stops working after the next refetch", async () => {
    const { jwks, keys, verifier, advance } = await withJwks(2);
    expect(await verifier.verify(await signAppToken(keys[1]!))).toMatchObject({ ok: true });
    jwks.keys = [keys[0]!];
    advance(31_000);
    await verifier.verify(await signAppToken(keys[0]!, { kid: "some-new-kid" }));
    expect(await verifier.verify(await signAppToken(keys[1]!))).toEqual({ ok: false, reason: "unknown key" });
  });

  test("down at start-up: one warning line, tokens refused; once it answers, tokens work", async () => {
    const key = await makeKey("RS256");
    const jwks = serveJwks([key]);
    servers.push(jwks);
    jwks.mode = "500";
    let clock = Date.now();
    const log = recordingLog();
    const verifier = new AppTokenVerifier(settings({ authJwksUrl: jwks.url }), { log, now: () => clock });
    await verifier.start();
    expect(log.lines.filter((l) => l.includes('"warn"'))).toHaveLength(1);
    expect(log.lines[0]).toContain("AUTH_JWKS_URL could not be read (start-up)");
    const token = await signAppToken(key);
    expect(await verifier.verify(token)).toEqual({ ok: false, reason: "unknown key" });
    jwks.mode = "ok";
    expect(await verifier.verify(token)).toEqual({ ok: false, reason: "unknown key" }); // cooling down
    clock += 30_000;
    expect(await verifier.verify(token)).toMatchObject({ ok: true });
    expect(log.lines.join("\n")).not.toContain(token);
  });

  test("garbage, 500 or down later: cached keys keep working (past the 10 min refresh too), new kids fail", async () => {
    const { jwks, keys, verifier, advance, log } = await withJwks();
    const fresh = await makeKey("RS256");
    for (const mode of ["garbage", "500"] as const) {
      jwks.mode = mode;
      jwks.keys = [keys[0]!, fresh];
      advance(31_000);
      expect(await verifier.verify(await signAppToken(fresh))).toEqual({ ok: false, reason: "unknown key" });
      expect(await verifier.verify(await signAppToken(keys[0]!))).toMatchObject({ ok: true });
    }
    jwks.stop();
    advance(11 * 60_000);
    const longLived = await signAppToken(keys[0]!, { expiresIn: 3600 });
    expect(await verifier.verify(longLived)).toMatchObject({ ok: true });
    await Bun.sleep(100);
    expect(await verifier.verify(longLived)).toMatchObject({ ok: true });
    expect(log.lines.filter((l) => l.includes("could not be read")).length).toBeGreaterThanOrEqual(2);
  });
});
