import { describe, expect, test } from "bun:test";
import { type Reply, ReplyReader } from "./resp.ts";

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
