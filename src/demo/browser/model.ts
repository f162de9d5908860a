/**
 * The chat's state, free of the DOM and the socket: conversations (rooms and direct-message
 * threads), their lines, sends still waiting for the server, and room members.
 */
import type { Message, PresenceMember, User } from "../../client/index.ts";

/** What the demo publishes: `id` lets the sender replace its pending line with the real one. */
export interface ChatData {
  text: string;
  id: string;
  /** On direct messages: the recipient, so the sender's other tabs could file it. */
  to?: string;
}

export type Line =
  | { kind: "message"; seq: number | null; from: string; text: string; ts: number; mine: boolean }
  | { kind: "system"; text: string; ts: number; tone: "info" | "warn" };

export interface Pending {
  id: string;
  text: string;
  ts: number;
  failed: string | null;
}

export interface Conversation {
  /** `room:<name>`, `private:<name>-<random>` or `dm:<user id>`. */
  key: string;
  kind: "room" | "dm";
  /** Where sends go: the room topic, or the peer's inbox `user:<id>`. */
  topic: string;
  title: string;
  lines: Line[];
  pending: Map<string, Pending>;
  unread: number;
  members: PresenceMember[];
  /** Rooms: the subscription was acknowledged (presence and messages flow). */
  joined: boolean;
  /** A private room: only invited users reach it. */
  private?: boolean;
}

/** Topic-name rules (SPEC: `^[A-Za-z0-9:_.@|+=-]{1,128}$`), minus the prefix this demo adds. */
export const NAME = /^[A-Za-z0-9_.-]{1,120}$/;
export const LINE_LIMIT = 500;

export function roomConversation(name: string): Conversation {
  return { key: `room:${name}`, kind: "room", topic: `room:${name}`, title: `#${name}`, lines: [], pending: new Map(), unread: 0, members: [], joined: false };
}

/** A private room (`private:<name>-<random>`): a room whose key is its topic. */
export function privateConversation(topic: string): Conversation {
  const name = topic.slice("private:".length).replace(/-[0-9a-f]{12}$/, "");
  return { ...roomConversation(name), key: topic, topic, title: `#${name}`, private: true };
}

export function dmConversation(peer: string): Conversation {
  return { key: `dm:${peer}`, kind: "dm", topic: `user:${peer}`, title: `@${peer}`, lines: [], pending: new Map(), unread: 0, members: [], joined: true };
}

/** The text of a publication: the demo's `{text}`, or the JSON of anything else (e.g. the HTTP API). */
export function textOf(data: unknown): string {
  if (data !== null && typeof data === "object" && typeof (data as { text?: unknown }).text === "string") return (data as { text: string }).text;
  return typeof data === "string" ? data : JSON.stringify(data);
}

export function idOf(data: unknown): string | null {
  const id = data !== null && typeof data === "object" ? (data as { id?: unknown }).id : undefined;
  return typeof id === "string" ? id : null;
}

/**
 * Adds a received publication and drops the sender's pending copy. No de-duplication here: the
 * SDK hands each publication once, in order, and the browser tests check exactly that on screen.
 */
export function addMessage(conv: Conversation, m: Message, me: User): void {
  const id = idOf(m.data);
  if (id !== null && m.from === me.id) conv.pending.delete(id);
  push(conv, { kind: "message", seq: m.seq ?? null, from: m.from, text: textOf(m.data), ts: m.ts, mine: m.from === me.id });
}

/** A direct message I sent to someone else, filed once the server acknowledged it. */
export function addSent(conv: Conversation, text: string, me: User): void {
  push(conv, { kind: "message", seq: null, from: me.id, text, ts: Date.now(), mine: true });
}

export function addSystem(conv: Conversation, text: string, tone: "info" | "warn" = "info"): void {
  push(conv, { kind: "system", text, ts: Date.now(), tone });
}

function push(conv: Conversation, line: Line): void {
  conv.lines.push(line);
  if (conv.lines.length > LINE_LIMIT) conv.lines.splice(0, conv.lines.length - LINE_LIMIT);
}

/** 96 random bits as hex (crypto.randomUUID needs a secure context; plain http on a LAN is not one). */
export function randomId(): string {
  let out = "";
  for (const b of crypto.getRandomValues(new Uint8Array(12))) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Members sorted: me first, then by name. */
export function sortedMembers(members: PresenceMember[], me: User): PresenceMember[] {
  return [...members].sort((a, b) => (a.user.id === me.id ? -1 : b.user.id === me.id ? 1 : a.user.name.localeCompare(b.user.name)));
}
