/**
 * The conversations of one chat session (chat.ts) — rooms, private rooms, direct-message threads —
 * and which one is shown: the sidebar, unread counts, the shown conversation's lines and members,
 * and the rooms kept for the next visit (saved-rooms.ts).
 */
import type { User } from "../../client/index.ts";
import type { Conversation } from "./model.ts";
import { saveRooms } from "./saved-rooms.ts";
import type { ChatView } from "./view.ts";

export class Conversations {
  readonly #all = new Map<string, Conversation>();
  readonly #me: User;
  readonly #view: ChatView;
  #active: string | null = null;

  constructor(me: User, view: ChatView) {
    this.#me = me;
    this.#view = view;
  }

  get(key: string): Conversation | undefined {
    return this.#all.get(key);
  }

  has(key: string): boolean {
    return this.#all.has(key);
  }

  set(conv: Conversation): void {
    this.#all.set(conv.key, conv);
  }

  delete(key: string): void {
    this.#all.delete(key);
  }

  list(): Conversation[] {
    return [...this.#all.values()];
  }

  /** The key of the first conversation (the one shown after a leave), null when none. */
  firstKey(): string | null {
    return [...this.#all.keys()][0] ?? null;
  }

  /** Whether `conv` is still in the session (neither left nor replaced). */
  holds(conv: Conversation): boolean {
    return this.#all.get(conv.key) === conv;
  }

  get activeKey(): string | null {
    return this.#active;
  }

  current(): Conversation | null {
    return this.#active === null ? null : (this.#all.get(this.#active) ?? null);
  }

  select(key: string | null): void {
    this.#active = key !== null && this.#all.has(key) ? key : null;
    const conv = this.current();
    if (conv) conv.unread = 0;
    this.#view.conversation(conv);
    this.#view.presenceList(conv);
    this.renderSidebar();
  }

  /** A line was added to `conv`: show it, or count it as unread. */
  added(conv: Conversation, counts = false): void {
    if (this.current() === conv) {
      this.#view.appendLast(conv);
      this.#view.presenceList(conv);
    } else if (counts) {
      conv.unread++;
    }
    this.renderSidebar();
  }

  renderSidebar(): void {
    this.#view.sidebar(this.#all.values(), this.#active, (key) => this.select(key));
  }

  /** Keeps the public rooms (`room:<name>`) for the next visit. */
  saveRooms(): void {
    saveRooms(this.#me.id, this.list().filter((c) => c.kind === "room" && c.key.startsWith("room:")).map((c) => c.key.slice(5)));
  }
}
