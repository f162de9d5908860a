/**
 * One signed-in session of the demo: the SDK client, the rooms and direct-message threads, and
 * what the page shows about the connection. Talks to the server only through the SDK.
 *
 * Rooms are `room:<name>` subscriptions. Direct messages arrive on the user's inbox `user:<me>`,
 * which the server joins at welcome; the demo also subscribes to it through the SDK so that the
 * inbox keeps a position and is resumed with `since` after a reconnect, like the rooms. A direct
 * message is a publish to the peer's inbox `user:<peer>`. A room the server adds this user to
 * (`POST /api/subscribe`) appears in the sidebar; one it removes the user from says so.
 * Private rooms (the demo as shipped, private-rooms.ts): the client connects with a ticket carrying
 * the user's grants, a room created or joined by invitation is added to the open socket's rights
 * in-band, and an invitation appears at once through the server's `subscribed`.
 * What the page shows about the connection itself is connection.ts.
 */
import { createClient, type Message, type PresenceEvent, type SwitchboardClient, type SwitchboardClientError, type User } from "../../client/index.ts";
import { ConnectionStatus } from "./connection.ts";
import { addMessage, addSent, addSystem, dmConversation, privateConversation, randomId, roomConversation, type ChatData, type Conversation } from "./model.ts";
import { createRoom, GrantBook, invite, isInvite, isPrivateTopic, privateRoomsOn, refreshRights, ticketWith, type InviteData } from "./private-rooms.ts";
import { savedRooms, saveRooms } from "./saved-rooms.ts";
import type { StatusView } from "./status.ts";
import { ChatView } from "./view.ts";

export interface ChatOptions {
  me: User;
  status: StatusView;
  /** Users to suggest for direct messages (the demo users in development). */
  knownUsers: string[];
  /** The session is gone (4001: signed out elsewhere, expired, revoked). */
  onSessionEnded(): void;
}

export class Chat {
  readonly client: SwitchboardClient;
  readonly #me: User;
  readonly #status: StatusView;
  readonly #view: ChatView;
  readonly #conversations = new Map<string, Conversation>();
  readonly #known = new Set<string>();
  readonly #connection: ConnectionStatus;
  #active: string | null = null;
  #presenceTimers = new Map<string, ReturnType<typeof setTimeout>>();
  #inboxJoined = false;
  /** The user's private-room grants; null when the server offers no private rooms. */
  readonly #grants: GrantBook | null;
  #stopped = false;

  constructor(options: ChatOptions) {
    this.#me = options.me;
    this.#status = options.status;
    this.#view = new ChatView(this.#me);
    for (const u of options.knownUsers) this.#known.add(u);
    this.#grants = privateRoomsOn() ? new GrantBook(this.#me.id) : null;
    const grants = this.#grants;
    // With private rooms each connection opens with a ticket carrying the user's grants (the
    // cookie carries no caps); without, the session cookie authenticates the upgrade.
    this.client = createClient(grants ? { autoConnect: false, getTicket: () => ticketWith(grants) } : { autoConnect: false });
    this.#connection = new ConnectionStatus(this.client, {
      me: this.#me,
      status: this.#status,
      stopped: () => this.#stopped,
      stop: () => this.stop(),
      sessionEnded: () => options.onSessionEnded(),
      resumingTopics: () => this.#resumingTopics(),
    });
    this.client.on("subscribed", ({ topic }) => {
      if (topic.startsWith("room:")) this.joinRoom(topic.slice(5));
      else if (isPrivateTopic(topic)) this.joinPrivate(topic);
    });
    this.client.on("unsubscribed", ({ topic }) => this.#removed(topic));
    // A socket that took a token in-band (private rooms) expires with it: renew it on the same socket.
    if (grants) {
      this.client.on("expiring", () =>
        refreshRights(this.client, grants).catch((e: SwitchboardClientError) => this.#status.log(`Could not renew the connection's rights: ${e.message}`, "warn")),
      );
    }
  }

  start(): void {
    this.#status.set("connecting", "Connecting…");
    this.client.connect();
    void this.client
      .subscribe(`user:${this.#me.id}`, {
        onMessage: (m) => this.#onInbox(m),
        onRecovered: (ok, topic) => this.#connection.recovered(topic, ok),
        onResync: (info) => this.#onResync(info.topic, info.reason),
      })
      .then(
        () => (this.#inboxJoined = true),
        (e: SwitchboardClientError) => this.#status.log(`Inbox unavailable: ${e.message}`, "warn"),
      );
    for (const name of savedRooms(this.#me.id)) this.joinRoom(name);
    for (const { topic } of this.#grants?.all() ?? []) this.joinPrivate(topic);
    this.select([...this.#conversations.keys()][0] ?? null);
  }

  /** Stops the client (no reconnect) and forgets every timer. */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#presenceTimers.values()) clearTimeout(t);
    this.#presenceTimers.clear();
    this.client.close();
  }

  // ------------------------------------------------------------------------------------------
  // Conversations

  /** Joins `room:<name>` (idempotent) and returns its key. */
  joinRoom(name: string): string {
    const key = `room:${name}`;
    if (this.#conversations.has(key)) return key;
    const conv = roomConversation(name);
    this.#conversations.set(key, conv);
    this.#saveRooms();
    this.#subscribeRoom(conv);
    return key;
  }

  /** Joins a private room (idempotent): one the server subscribed this user to, or one with a held grant. */
  joinPrivate(topic: string): string {
    if (this.#conversations.has(topic)) return topic;
    const conv = privateConversation(topic);
    this.#conversations.set(topic, conv);
    this.#subscribeRoom(conv);
    return topic;
  }

  /** Creates a private room: the server signs this user's grant, the open socket takes it in-band, then joins. */
  async createPrivate(name: string): Promise<string> {
    const grants = this.#grants;
    if (!grants) throw new Error("this server offers no private rooms");
    const held = await createRoom(name);
    grants.add(held);
    await refreshRights(this.client, grants);
    return this.joinPrivate(held.topic);
  }

  /** Invites `user` to the shown private room. Resolves with a line to show. */
  async invite(user: string): Promise<string> {
    const conv = this.#current();
    const grant = conv ? this.#grants?.grantFor(conv.topic) : null;
    if (!conv || !grant) throw new Error("open a private room you are in first");
    const { sockets } = await invite(conv.topic, user, grant);
    addSystem(conv, `You invited ${user}${sockets > 0 ? "" : " (not online now: the room appears on their next visit if they keep this invitation)"}.`);
    this.#added(conv);
    return `Invited ${user}`;
  }

  #subscribeRoom(conv: Conversation): void {
    this.client
      .subscribe(conv.topic, {
        onMessage: (m) => this.#receive(conv, m),
        onPresence: (e) => this.#onPresence(conv, e),
        onRecovered: (ok, topic) => {
          this.#connection.recovered(topic, ok);
          this.#refreshPresence(conv);
        },
        onResync: (info) => this.#onResync(info.topic, info.reason),
        onError: (e) => this.#roomFailed(conv, e),
      })
      .then(() => {
        conv.joined = true;
        addSystem(conv, `You joined ${conv.title}.`);
        this.#added(conv);
        this.#refreshPresence(conv);
      })
      .catch((e: SwitchboardClientError) => this.#roomFailed(conv, e));
    this.#renderSidebar();
  }

  async leaveRoom(key: string): Promise<void> {
    const conv = this.#conversations.get(key);
    if (!conv || conv.kind !== "room") return;
    this.#conversations.delete(key);
    this.#saveRooms();
    if (isPrivateTopic(conv.topic)) this.#grants?.remove(conv.topic);
    const next = [...this.#conversations.keys()][0] ?? null;
    this.select(next);
    this.#status.log(`Left ${conv.title}`);
    await this.client.unsubscribe(conv.topic).catch(() => {});
  }

  openDm(peer: string): string {
    const key = `dm:${peer}`;
    if (!this.#conversations.has(key)) this.#conversations.set(key, dmConversation(peer));
    this.#known.add(peer);
    this.#view.knownUserOptions(this.#known);
    this.#renderSidebar();
    return key;
  }

  select(key: string | null): void {
    this.#active = key !== null && this.#conversations.has(key) ? key : null;
    const conv = this.#current();
    if (conv) conv.unread = 0;
    this.#view.conversation(conv);
    this.#view.presenceList(conv);
    this.#renderSidebar();
  }

  get activeKey(): string | null {
    return this.#active;
  }

  /** Sends `text` to the shown conversation. The line shows as pending until the server has it. */
  send(text: string): void {
    const conv = this.#current();
    if (!conv || text.trim() === "") return;
    const id = randomId();
    const pending = { id, text, ts: Date.now(), failed: null as string | null };
    conv.pending.set(id, pending);
    this.#view.pending(conv);
    const data: ChatData = conv.kind === "dm" ? { text, id, to: conv.key.slice(3) } : { text, id };
    this.client.publish(conv.topic, data).then(
      () => {
        // A room (or a DM to myself) comes back through a subscription, which replaces the pending
        // line in order; a DM to someone else does not come back: file it now.
        if (conv.kind === "dm" && conv.topic !== `user:${this.#me.id}` && conv.pending.delete(id)) {
          addSent(conv, text, this.#me);
          this.#added(conv);
        }
      },
      (e: SwitchboardClientError) => {
        pending.failed = e.code === "closed" ? "disconnected" : e.code.replace("_", " ");
        if (this.#current() === conv) this.#view.pending(conv);
      },
    );
  }

  // ------------------------------------------------------------------------------------------
  // Events

  #receive(conv: Conversation, m: Message): void {
    addMessage(conv, m, this.#me);
    this.#known.add(m.from);
    this.#added(conv, true);
  }

  #onInbox(m: Message): void {
    if (m.from === "server" && isInvite(m.data)) return void this.#invited(m.data);
    // A DM from someone is filed under them; one I sent to myself under me.
    const to = (m.data as { to?: unknown } | null)?.to;
    const peer = m.from === this.#me.id && typeof to === "string" ? to : m.from;
    const key = this.openDm(peer);
    this.#receive(this.#conversations.get(key)!, m);
  }

  #onPresence(conv: Conversation, e: PresenceEvent): void {
    this.#known.add(e.user.id);
    if (e.user.id !== this.#me.id) {
      addSystem(conv, `${e.user.name} ${e.type === "join" ? "joined" : "left"}.`);
      this.#added(conv);
    }
    this.#refreshPresence(conv);
  }

  /**
   * An invitation in the inbox (sent right before the server subscribes this user): keep the
   * grant, give the open socket its rights in-band, and show the room.
   */
  #invited(invite: InviteData): void {
    const grants = this.#grants;
    if (!grants) return;
    grants.add({ topic: invite.topic, grant: invite.grant });
    refreshRights(this.client, grants).then(
      () => {
        const conv = this.#conversations.get(this.joinPrivate(invite.topic))!;
        addSystem(conv, `${invite.by} invited you to ${conv.title}.`);
        this.#added(conv);
      },
      (e: SwitchboardClientError) => this.#status.log(`Could not take the invitation to ${invite.topic}: ${e.message}`, "warn"),
    );
  }

  /** Asks the server who is in the room (debounced): counts per user change with every tab. */
  #refreshPresence(conv: Conversation): void {
    clearTimeout(this.#presenceTimers.get(conv.key));
    this.#presenceTimers.set(
      conv.key,
      setTimeout(() => {
        this.#presenceTimers.delete(conv.key);
        if (this.#stopped || this.#conversations.get(conv.key) !== conv) return;
        this.client.presence(conv.topic).then(
          (members) => {
            conv.members = members;
            for (const m of members) this.#known.add(m.user.id);
            this.#view.knownUserOptions(this.#known);
            if (this.#current() === conv) this.#view.presenceList(conv);
          },
          () => {}, // offline: the next reconnect refreshes it
        );
      }, 50),
    );
  }

  /** Acknowledged subscriptions: after a reconnect each reports through onRecovered. */
  #resumingTopics(): string[] {
    const topics = [...this.#conversations.values()].filter((conv) => conv.kind === "room" && conv.joined).map((conv) => conv.topic);
    if (this.#inboxJoined) topics.push(`user:${this.#me.id}`);
    return topics;
  }

  /** The server removed this user from a room (SPEC §6): the room stays, marked as left. */
  #removed(topic: string): void {
    const conv = this.#conversations.get(topic);
    if (!conv || conv.kind !== "room") return;
    conv.joined = false;
    addSystem(conv, `You were removed from ${conv.title}.`, "warn");
    this.#added(conv);
    this.#status.log(`Removed from ${conv.title} by the server`, "warn");
  }

  #onResync(topic: string, reason: "resync" | "not_recovered"): void {
    const conv = [...this.#conversations.values()].find((c) => c.topic === topic);
    const text =
      reason === "resync"
        ? "The server lost continuity here (history gone): messages above may be incomplete."
        : "Reconnected after the server's history expired: messages may be missing above.";
    const targets = conv ? [conv] : [...this.#conversations.values()].filter((c) => c.kind === "dm");
    for (const target of targets) {
      addSystem(target, text, "warn");
      this.#added(target);
    }
    this.#status.set("resync", `Resynced ${topic} · some messages may be missing`);
    this.#status.log(`Resync on ${topic}`, "warn");
  }

  #roomFailed(conv: Conversation, e: SwitchboardClientError): void {
    if (e.code === "cancelled" || this.#conversations.get(conv.key) !== conv) return;
    conv.joined = false;
    addSystem(conv, `Could not join ${conv.title}: ${e.message}`, "warn");
    this.#added(conv);
  }

  // ------------------------------------------------------------------------------------------
  // Rendering and storage

  #current(): Conversation | null {
    return this.#active === null ? null : (this.#conversations.get(this.#active) ?? null);
  }

  /** A line was added to `conv`: show it, or count it as unread. */
  #added(conv: Conversation, counts = false): void {
    if (this.#current() === conv) {
      this.#view.appendLast(conv);
      this.#view.presenceList(conv);
    } else if (counts) {
      conv.unread++;
    }
    this.#renderSidebar();
  }

  #renderSidebar(): void {
    this.#view.sidebar(this.#conversations.values(), this.#active, (key) => this.select(key));
  }

  #saveRooms(): void {
    saveRooms(this.#me.id, [...this.#conversations.values()].filter((c) => c.kind === "room" && c.key.startsWith("room:")).map((c) => c.key.slice(5)));
  }
}
