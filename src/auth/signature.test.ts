import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { SignatureError, signatureHeader, verifySignature } from "./signature.ts";

const secret = "s".repeat(40);

describe("Switchboard-Signature", () => {
  test("t=<unix s>,v1=<hex HMAC-SHA256 of '<t>.<body>'>", () => {
    const header = signatureHeader(secret, '{"a":1}', 1_700_000_000);
    const want = createHmac("sha256", secret).update('1700000000.{"a":1}').digest("hex");
    expect(header).toBe(`t=1700000000,v1=${want}`);
    expect(() => verifySignature('{"a":1}', header, secret, 300, 1_700_000_100)).not.toThrow();
  });

  test("a changed body, another secret, an old or future t, garbage: refused with a reason", () => {
    const header = signatureHeader(secret, "{}", 1000);
    const cases: [string, string | undefined, string, number][] = [
      ['{"x":1}', header, secret, 1000],
      ["{}", header, "o".repeat(40), 1000],
      ["{}", header, secret, 1301],
      ["{}", header, secret, 699],
      ["{}", "t=abc,v1=zz", secret, 1000],
      ["{}", undefined, secret, 1000],
      ["{}", "", secret, 1000],
    ];
    for (const [body, h, key, now] of cases) expect(() => verifySignature(body, h, key, 300, now)).toThrow(SignatureError);
  });

  test("one matching v1 among several passes (secret rotation)", () => {
    const good = signatureHeader(secret, "{}", 1000);
    const other = signatureHeader("o".repeat(40), "{}", 1000).split(",")[1];
    expect(() => verifySignature("{}", `${good},${other}`, secret, 300, 1000)).not.toThrow();
  });
});
