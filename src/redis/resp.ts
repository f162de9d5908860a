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

/** The encoded command and its size in bytes (what a partial socket write is counted in). */
export function encodeCommand(args: readonly (string | number)[]): { text: string; bytes: number } {
  let text = `*${args.length}\r\n`;
  let bytes = text.length;
  for (const arg of args) {
    const value = typeof arg === "string" ? arg : String(arg);
    const size = Buffer.byteLength(value);
    const head = `$${size}\r\n`;
    text += head + value + "\r\n";
    bytes += head.length + size + 2;
  }
  return { text, bytes };
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
