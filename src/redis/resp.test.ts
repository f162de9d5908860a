import { describe, expect, test } from "bun:test";
import { encodeCommand, INCOMPLETE, parseReply, type Reply, ReplyReader } from "./resp.ts";

const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const push = (...items: string[]) => `*${items.length}\r\n${items.map(bulk).join("")}`;

/** What a subscriber's socket carries: confirmations, messages (one with a CR LF and non-ASCII inside), a pong, an error. */
const STREAM = Buffer.from(
  [
    "+OK\r\n",
    "*3\r\n$9\r\nsubscribe\r\n$9\r\nsb:{a}:ch\r\n:1\r\n",
    "*3\r\n$9\r\nsubscribe\r\n$9\r\nsb:{b}:ch\r\n:2\r\n",
    push("message", "sb:{a}:ch", "p1:e:{\"x\":1}"),
    push("message", "sb:{b}:ch", "p1:e:line\r\nbreak ünïcödé"),
    push("pong", ""),
    push("message", "sb:{ä}:ch", ""),
    "-ERR nope\r\n",
    push("message", "x", "p".repeat(300)),
  ].join(""),
);

function read(chunks: Buffer[]): { replies: Reply[]; messages: [string, string][] } {
  const replies: Reply[] = [];
  const messages: [string, string][] = [];
  const reader = new ReplyReader((r) => replies.push(r), (channel, payload) => messages.push([channel, payload]));
  for (const chunk of chunks) reader.feed(chunk);
  return { replies, messages };
}

describe("ReplyReader with pub/sub messages", () => {
  const whole = read([STREAM]);

  test("messages go to onMessage, every other reply to onReply, in order", () => {
    expect(whole.messages).toEqual([
      ["sb:{a}:ch", 'p1:e:{"x":1}'],
      ["sb:{b}:ch", "p1:e:line\r\nbreak ünïcödé"],
      ["sb:{ä}:ch", ""],
      ["x", "p".repeat(300)],
    ]);
    expect(whole.replies.length).toBe(5);
    expect(whole.replies.slice(0, 4)).toEqual(["OK", ["subscribe", "sb:{a}:ch", 1], ["subscribe", "sb:{b}:ch", 2], ["pong", ""]]);
    expect(String(whole.replies[4])).toContain("ERR nope");
  });

  test("the same, cut into two chunks at every byte and into single bytes", () => {
    for (let cut = 1; cut < STREAM.length; cut++) {
      expect(read([STREAM.subarray(0, cut), STREAM.subarray(cut)])).toEqual(whole);
    }
    expect(read([...STREAM].map((byte) => Buffer.from([byte])))).toEqual(whole);
  });

  test("without onMessage a message is an ordinary reply", () => {
    const replies: Reply[] = [];
    new ReplyReader((r) => replies.push(r)).feed(Buffer.from(push("message", "c", "p")));
    expect(replies).toEqual([["message", "c", "p"]]);
  });
});

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
