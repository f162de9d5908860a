/**
 * One signed-in session of the demo: the SDK client, the rooms and direct-message threads, and
 * what the page shows about the connection. Talks to the server only through the SDK.
 *
 * Rooms are `room:<name>` subscriptions. Direct messages arrive on the user's inbox `user:<me>`,
 * which the server joins at welcome; the demo also subscribes to it through the SDK so that the
 * inbox keeps a position and is resumed with `since` after a reconnect, like the rooms. A direct
 * message is a publish to the peer's inbox `user:<peer>`. A room the server adds this user to
 * (`POST /api/subscribe`) appears in the sidebar; one it removes the user from says so.
 * Private rooms (the demo as shipped, private-chat.ts and private-rooms.ts): the client connects
 * with a ticket carrying the user's grants, a room created or joined by invitation is added to the
 * open socket's rights in-band, and an invitation appears at once through the server's `subscribed`.
 * Who is in a room: presence-refresh.ts.
 * What the page shows about the connection itself is connection.ts.
 */
import { createClient, type Message, type PresenceEvent, type SwitchboardClient, type SwitchboardClientError, type User } from "../../client/index.ts";
import { ConnectionStatus } from "./connection.ts";
import { Conversations } from "./conversations.ts";
import { addMessage, addSent, addSystem, dmConversation, privateConversation, randomId, roomConversation, type ChatData, type Conversation } from "./model.ts";
import { PresenceRefresh } from "./presence-refresh.ts";
import { PrivateChat } from "./private-chat.ts";
import { isInvite, isPrivateTopic, privateRoomsOn } from "./private-rooms.ts";
import { savedRooms } from "./saved-rooms.ts";
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
  /** The conversations, and which one is shown. */
  readonly #list: Conversations;
  readonly #known = new Set<string>();
  readonly #connection: ConnectionStatus;
  readonly #presence: PresenceRefresh;
  #inboxJoined = false;
  /** The user's private rooms; null when the server offers no private rooms. */
  readonly #private: PrivateChat | null;
  #stopped = false;

  constructor(options: ChatOptions) {
    this.#me = options.me;
    this.#status = options.status;
    this.#view = new ChatView(this.#me);
    this.#list = new Conversations(this.#me, this.#view);
    for (const u of options.knownUsers) this.#known.add(u);
    const priv = privateRoomsOn() ? this.#privateChat() : null;
    this.#private = priv;
    // With private rooms each connection opens with a ticket carrying the user's grants (the
    // cookie carries no caps); without, the session cookie authenticates the upgrade.
    this.client = createClient(priv ? { autoConnect: false, getTicket: () => priv.ticket() } : { autoConnect: false });
    this.#presence = new PresenceRefresh({ client: this.client, list: this.#list, view: this.#view, known: this.#known, stopped: () => this.#stopped });
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
    if (priv) this.client.on("expiring", () => priv.renew());
  }

  #privateChat(): PrivateChat {
    return new PrivateChat(this.#me.id, {
      client: () => this.client,
      warn: (text) => this.#status.log(text, "warn"),
      join: (topic) => this.#list.get(this.joinPrivate(topic))!,
      added: (conv) => this.#list.added(conv),
    });
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
    for (const topic of this.#private?.heldTopics() ?? []) this.joinPrivate(topic);
    this.select(this.#list.firstKey());
  }

  /** Stops the client (no reconnect) and forgets every timer. */
  stop(): void {
    this.#stopped = true;
    this.#presence.clear();
    this.client.close();
  }

  // ------------------------------------------------------------------------------------------
  // Conversations

  /** Joins `room:<name>` (idempotent) and returns its key. */
  joinRoom(name: string): string {
    const key = `room:${name}`;
    if (this.#list.has(key)) return key;
    const conv = roomConversation(name);
    this.#list.set(conv);
    this.#list.saveRooms();
    this.#subscribeRoom(conv);
    return key;
  }

  /** Joins a private room (idempotent): one the server subscribed this user to, or one with a held grant. */
  joinPrivate(topic: string): string {
    if (this.#list.has(topic)) return topic;
    const conv = privateConversation(topic);
    this.#list.set(conv);
    this.#subscribeRoom(conv);
    return topic;
  }

  /** Creates a private room: the server signs this user's grant, the open socket takes it in-band, then joins. */
  async createPrivate(name: string): Promise<string> {
    if (!this.#private) throw new Error("this server offers no private rooms");
    return this.#private.create(name);
  }

  /** Invites `user` to the shown private room. Resolves with a line to show. */
  async invite(user: string): Promise<string> {
    if (!this.#private) throw new Error("open a private room you are in first");
    return this.#private.invite(this.#list.current(), user);
  }

  #subscribeRoom(conv: Conversation): void {
    this.client
      .subscribe(conv.topic, {
        onMessage: (m) => this.#receive(conv, m),
        onPresence: (e) => this.#onPresence(conv, e),
        onRecovered: (ok, topic) => {
          this.#connection.recovered(topic, ok);
          this.#presence.refresh(conv);
        },
        onResync: (info) => this.#onResync(info.topic, info.reason),
        onError: (e) => this.#roomFailed(conv, e),
      })
      .then(() => {
        conv.joined = true;
        addSystem(conv, `You joined ${conv.title}.`);
        this.#list.added(conv);
        this.#presence.refresh(conv);
      })
      .catch((e: SwitchboardClientError) => this.#roomFailed(conv, e));
    this.#list.renderSidebar();
  }

  async leaveRoom(key: string): Promise<void> {
    const conv = this.#list.get(key);
    if (!conv || conv.kind !== "room") return;
    this.#list.delete(key);
    this.#list.saveRooms();
    if (isPrivateTopic(conv.topic)) this.#private?.forget(conv.topic);
    const next = this.#list.firstKey();
    this.select(next);
    this.#status.log(`Left ${conv.title}`);
    await this.client.unsubscribe(conv.topic).catch(() => {});
  }

  openDm(peer: string): string {
    const key = `dm:${peer}`;
    if (!this.#list.has(key)) this.#list.set(dmConversation(peer));
    this.#known.add(peer);
    this.#view.knownUserOptions(this.#known);
    this.#list.renderSidebar();
    return key;
  }

  select(key: string | null): void {
    this.#list.select(key);
  }

  get activeKey(): string | null {
    return this.#list.activeKey;
  }

  /** Sends `text` to the shown conversation. The line shows as pending until the server has it. */
  send(text: string): void {
    const conv = this.#list.current();
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
          this.#list.added(conv);
        }
      },
      (e: SwitchboardClientError) => {
        pending.failed = e.code === "closed" ? "disconnected" : e.code.replace("_", " ");
        if (this.#list.current() === conv) this.#view.pending(conv);
      },
    );
  }

  // ------------------------------------------------------------------------------------------
  // Events

  #receive(conv: Conversation, m: Message): void {
    addMessage(conv, m, this.#me);
    this.#known.add(m.from);
    this.#list.added(conv, true);
  }

  #onInbox(m: Message): void {
    if (m.from === "server" && isInvite(m.data)) return void this.#private?.invited(m.data);
    // A DM from someone is filed under them; one I sent to myself under me.
    const to = (m.data as { to?: unknown } | null)?.to;
    const peer = m.from === this.#me.id && typeof to === "string" ? to : m.from;
    const key = this.openDm(peer);
    this.#receive(this.#list.get(key)!, m);
  }

  #onPresence(conv: Conversation, e: PresenceEvent): void {
    this.#known.add(e.user.id);
    if (e.user.id !== this.#me.id) {
      addSystem(conv, `${e.user.name} ${e.type === "join" ? "joined" : "left"}.`);
      this.#list.added(conv);
    }
    this.#presence.refresh(conv);
  }

  /** Acknowledged subscriptions: after a reconnect each reports through onRecovered. */
  #resumingTopics(): string[] {
    const topics = this.#list.list().filter((conv) => conv.kind === "room" && conv.joined).map((conv) => conv.topic);
    if (this.#inboxJoined) topics.push(`user:${this.#me.id}`);
    return topics;
  }

  /** The server removed this user from a room (SPEC §6): the room stays, marked as left. */
  #removed(topic: string): void {
    const conv = this.#list.get(topic);
    if (!conv || conv.kind !== "room") return;
    conv.joined = false;
    addSystem(conv, `You were removed from ${conv.title}.`, "warn");
    this.#list.added(conv);
    this.#status.log(`Removed from ${conv.title} by the server`, "warn");
  }

  #onResync(topic: string, reason: "resync" | "not_recovered"): void {
    const conv = this.#list.list().find((c) => c.topic === topic);
    const text =
      reason === "resync"
        ? "The server lost continuity here (history gone): messages above may be incomplete."
        : "Reconnected after the server's history expired: messages may be missing above.";
    const targets = conv ? [conv] : this.#list.list().filter((c) => c.kind === "dm");
    for (const target of targets) {
      addSystem(target, text, "warn");
      this.#list.added(target);
    }
    this.#status.set("resync", `Resynced ${topic} · some messages may be missing`);
    this.#status.log(`Resync on ${topic}`, "warn");
  }

  #roomFailed(conv: Conversation, e: SwitchboardClientError): void {
    if (e.code === "cancelled" || !this.#list.holds(conv)) return;
    conv.joined = false;
    addSystem(conv, `Could not join ${conv.title}: ${e.message}`, "warn");
    this.#list.added(conv);
  }
}
