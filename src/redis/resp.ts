/**
 * The RESP2 of resp-link.ts: commands out as arrays of bulk strings, replies in. Only what the
 * publish path's commands answer is decoded (simple strings, errors, integers, bulk strings,
 * arrays of those); a reply that is not complete yet is left in the buffer for the next chunk.
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
