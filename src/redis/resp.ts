/**
 * The RESP2 of resp-link.ts: commands out as arrays of bulk strings, replies in. Only what the
 * publish path's and the subscriber's commands answer is decoded (simple strings, errors, integers,
 * bulk strings, arrays of those); a reply that is not complete yet is left for the next chunk.
 * A pub/sub message is read in place (`readMessage`): it is the one reply a subscriber gets
 * thousands of per second, and ioredis's decoding of it cost ~5 µs more per message (round nine).
 */

/** A Redis error reply. Named like ioredis's so that `toSwitchboardError` maps both alike (`internal`). */
export class ReplyError extends Error {
  override name = "ReplyError";
}

export type Reply = string | number | null | ReplyError | Reply[];

/**
 * The encoded command and its size in bytes (what a partial socket write is counted in). One
 * `Buffer.byteLength` per argument and the text's own length for the rest: half the time of
 * counting every piece's bytes (0.78 → 0.35 µs for a publish's FCALL, issue 17 round nine).
 */
export function encodeCommand(args: readonly (string | number)[]): { text: string; bytes: number } {
  let text = "*" + args.length + "\r\n";
  // Bytes beyond one per UTF-16 unit: the headers are ASCII, only the values may be wider.
  let wider = 0;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = typeof arg === "string" ? arg : String(arg);
    const size = Buffer.byteLength(value);
    wider += size - value.length;
    text += "$" + size + "\r\n" + value + "\r\n";
  }
  return { text, bytes: text.length + wider };
}

/** Returned by `parseReply` when the buffer ends inside a reply. */
export const INCOMPLETE = Symbol("incomplete");

const CR = 13;

/** One reply starting at `at`: the value and where the next one starts, or INCOMPLETE. */
export function parseReply(data: Buffer, at: number): [Reply, number] | typeof INCOMPLETE {
  const lineEnd = data.indexOf(CR, at);
  if (lineEnd < 0 || lineEnd + 1 >= data.length) return INCOMPLETE;
  const next = lineEnd + 2;
  const type = data[at];
  if (type === 0x24 /* $ */) {
    const size = Number(data.toString("latin1", at + 1, lineEnd));
    if (size < 0) return [null, next];
    if (next + size + 2 > data.length) return INCOMPLETE;
    return [data.toString("utf8", next, next + size), next + size + 2];
  }
  const line = data.toString("utf8", at + 1, lineEnd);
  switch (type) {
    case 0x2b /* + */:
      return [line, next];
    case 0x2d /* - */:
      return [new ReplyError(line), next];
    case 0x3a /* : */:
      return [Number(line), next];
    case 0x2a /* * */: {
      const count = Number(line);
      if (count < 0) return [null, next];
      const items: Reply[] = [];
      let from = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(data, from);
        if (item === INCOMPLETE) return INCOMPLETE;
        items.push(item[0]);
        from = item[1];
      }
      return [items, from];
    }
    default:
      throw new Error(`unexpected RESP type byte ${type}`);
  }
}

/** Returned by `readMessage` for a reply that is not a pub/sub message. */
export const NOT_A_MESSAGE = -1;

/** A run of ASCII digits as a number (a RESP length). */
function digits(data: Buffer, from: number, to: number): number {
  let value = 0;
  for (let i = from; i < to; i++) value = value * 10 + data[i]! - 48;
  return value;
}

/**
 * A pub/sub message at `at` ("*3\r\n$7\r\nmessage\r\n$<n>\r\n<channel>\r\n$<m>\r\n<payload>\r\n"):
 * handed to `deliver`, returning where the next reply starts; NOT_A_MESSAGE for any other reply
 * (the only 7-letter pub/sub kind starting with "m" is "message"); INCOMPLETE when it is cut.
 */
export function readMessage(data: Buffer, at: number, deliver: (channel: string, payload: string) => void): number | typeof INCOMPLETE {
  // Anything else, or a message cut this early, goes through parseReply (which waits for the rest).
  if (data.length - at < 17 || data[at] !== 0x2a || data[at + 1] !== 0x33 || data[at + 2] !== CR) return NOT_A_MESSAGE;
  if (data[at + 5] !== 0x37 || data[at + 6] !== CR || data[at + 8] !== 0x6d) return NOT_A_MESSAGE;
  const channelHead = at + 17; // past "*3\r\n$7\r\nmessage\r\n"
  const channelEnd = data.indexOf(CR, channelHead);
  if (channelEnd < 0) return INCOMPLETE;
  const channelAt = channelEnd + 2;
  const channelSize = digits(data, channelHead + 1, channelEnd);
  const payloadHead = channelAt + channelSize + 2;
  const payloadEnd = payloadHead < data.length ? data.indexOf(CR, payloadHead) : -1;
  if (payloadEnd < 0) return INCOMPLETE;
  const payloadAt = payloadEnd + 2;
  const next = payloadAt + digits(data, payloadHead + 1, payloadEnd) + 2;
  if (next > data.length) return INCOMPLETE;
  deliver(data.toString("utf8", channelAt, payloadHead - 2), data.toString("utf8", payloadAt, next - 2));
  return next;
}

/**
 * Reads the replies out of the chunks a socket hands over, in order; a reply cut by the chunk's
 * end waits for the next. With `onMessage`, pub/sub messages go there instead of to `onReply`.
 * Throws on bytes that are not RESP2 (the caller drops the connection).
 */
export class ReplyReader {
  private rest: Buffer | null = null;

  constructor(
    private readonly onReply: (reply: Reply) => void,
    private readonly onMessage?: (channel: string, payload: string) => void,
  ) {}

  feed(chunk: Buffer): void {
    const data = this.rest === null ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = null;
    let at = 0;
    while (at < data.length) {
      if (this.onMessage !== undefined) {
        const next = readMessage(data, at, this.onMessage);
        if (next === INCOMPLETE) break;
        if (next !== NOT_A_MESSAGE) {
          at = next;
          continue;
        }
      }
      const parsed = parseReply(data, at);
      if (parsed === INCOMPLETE) break;
      at = parsed[1];
      this.onReply(parsed[0]);
    }
    // Copied: the chunk's memory may be reused once the socket's callback returns.
    if (at < data.length) this.rest = Buffer.from(data.subarray(at));
  }

  reset(): void {
    this.rest = null;
  }
}
