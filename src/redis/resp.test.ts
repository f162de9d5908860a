import { describe, expect, test } from "bun:test";
import { encodeCommand, INCOMPLETE, parseReply } from "./resp.ts";

describe("encodeCommand", () => {
  test("each argument as a bulk string, and the size in bytes of what goes on the wire", () => {
    const args = ["FCALL", "f", 2, "sb:{t}:meta", "", "héllo ✓", "😀 \u2028", "\ud800 lone", 1.5, -3];
    const { text, bytes } = encodeCommand(args);
    expect(bytes).toBe(Buffer.byteLength(text));
    // Read back as Redis would: the count, then each size in bytes and the bytes.
    const wire = Buffer.from(text);
    expect(wire.toString("latin1", 0, 4)).toBe(`*${args.length}\r`);
    let at = wire.indexOf("\n") + 1;
    for (const arg of args) {
      const lineEnd = wire.indexOf("\r", at);
      const size = Number(wire.toString("latin1", at + 1, lineEnd));
      const value = Buffer.from(String(arg));
      expect(size).toBe(value.length);
      expect(wire.subarray(lineEnd + 2, lineEnd + 2 + size).equals(value)).toBe(true);
      at = lineEnd + 2 + size + 2;
    }
    expect(at).toBe(wire.length);
  });

  test("random strings: the size is the UTF-8 size of the text", () => {
    for (let n = 0; n < 500; n++) {
      const args = Array.from({ length: 1 + (n % 7) }, () =>
        String.fromCharCode(...Array.from({ length: Math.floor(Math.random() * 40) }, () => Math.floor(Math.random() * 0xffff))),
      );
      const { text, bytes } = encodeCommand(args);
      expect(bytes).toBe(Buffer.byteLength(text));
    }
  });
});

describe("parseReply", () => {
  test("a bulk string split over two chunks is incomplete until its end arrives", () => {
    const whole = Buffer.from("$7\r\n1:ab:0x\r\n");
    expect(parseReply(whole.subarray(0, 8), 0)).toBe(INCOMPLETE);
    expect(parseReply(whole, 0)).toEqual(["1:ab:0x", whole.length]);
  });
});
