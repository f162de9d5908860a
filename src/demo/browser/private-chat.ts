/**
 * The private rooms of one chat session (chat.ts), page side: the user's grants, the ticket each
 * connection opens with, the rights an open socket takes in-band (a room created, an invitation
 * received, a token nearing its expiry), and the lines these add to the conversations. The grants
 * and the `/demo/*` calls themselves are private-rooms.ts.
 */
import type { SwitchboardClient, SwitchboardClientError } from "../../client/index.ts";
import { addSystem, type Conversation } from "./model.ts";
import { createRoom, GrantBook, invite, refreshRights, ticketWith, type InviteData } from "./private-rooms.ts";

/** What the private rooms need from the chat session. */
export interface PrivateChatHost {
  client(): SwitchboardClient;
  warn(text: string): void;
  /** Joins a private room (idempotent) and returns its conversation. */
  join(topic: string): Conversation;
  /** A line was added to `conv`. */
  added(conv: Conversation): void;
}

export class PrivateChat {
  readonly #grants: GrantBook;
  readonly #host: PrivateChatHost;

  constructor(me: string, host: PrivateChatHost) {
    this.#grants = new GrantBook(me);
    this.#host = host;
  }

  /** The ticket a new connection opens with: it carries the user's grants (the cookie carries no caps). */
  ticket(): Promise<string> {
    return ticketWith(this.#grants);
  }

  /** A socket that took a token in-band expires with it: renew it on the same socket. */
  renew(): void {
    refreshRights(this.#host.client(), this.#grants).catch((e: SwitchboardClientError) => this.#host.warn(`Could not renew the connection's rights: ${e.message}`));
  }

  /** The topics of the rooms the user holds a grant for. */
  heldTopics(): string[] {
    return this.#grants.all().map(({ topic }) => topic);
  }

  /** The user left `topic`: forget its grant. */
  forget(topic: string): void {
    this.#grants.remove(topic);
  }

  /** Creates a private room: the server signs this user's grant, the open socket takes it in-band, then joins. */
  async create(name: string): Promise<string> {
    const held = await createRoom(name);
    this.#grants.add(held);
    await refreshRights(this.#host.client(), this.#grants);
    return this.#host.join(held.topic).key;
  }

  /** Invites `user` to the private room `conv` (null: none shown). Resolves with a line to show. */
  async invite(conv: Conversation | null, user: string): Promise<string> {
    const grant = conv ? this.#grants.grantFor(conv.topic) : null;
    if (!conv || !grant) throw new Error("open a private room you are in first");
    const { sockets } = await invite(conv.topic, user, grant);
    addSystem(conv, `You invited ${user}${sockets > 0 ? "" : " (not online now: the room appears on their next visit if they keep this invitation)"}.`);
    this.#host.added(conv);
    return `Invited ${user}`;
  }

  /**
   * An invitation in the inbox (sent right before the server subscribes this user): keep the
   * grant, give the open socket its rights in-band, and show the room.
   */
  invited(data: InviteData): void {
    this.#grants.add({ topic: data.topic, grant: data.grant });
    refreshRights(this.#host.client(), this.#grants).then(
      () => {
        const conv = this.#host.join(data.topic);
        addSystem(conv, `${data.by} invited you to ${conv.title}.`);
        this.#host.added(conv);
      },
      (e: SwitchboardClientError) => this.#host.warn(`Could not take the invitation to ${data.topic}: ${e.message}`),
    );
  }
}
