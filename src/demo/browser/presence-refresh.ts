/**
 * Who is in each room of the demo (chat.ts): asked of the server (`presence`) a moment after
 * something changed — joined, recovered, someone came or went — and once per burst of changes, so
 * the member counts follow every tab of every user.
 */
import type { SwitchboardClient } from "../../client/index.ts";
import type { Conversations } from "./conversations.ts";
import type { Conversation } from "./model.ts";
import type { ChatView } from "./view.ts";

/** What the presence refresh needs from the chat session. */
export interface PresenceHost {
  readonly client: SwitchboardClient;
  readonly list: Conversations;
  readonly view: ChatView;
  /** The users to suggest for direct messages: every member seen joins them. */
  readonly known: Set<string>;
  stopped(): boolean;
}

export class PresenceRefresh {
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #host: PresenceHost;

  constructor(host: PresenceHost) {
    this.#host = host;
  }

  /** Asks the server who is in the room (debounced). */
  refresh(conv: Conversation): void {
    clearTimeout(this.#timers.get(conv.key));
    this.#timers.set(
      conv.key,
      setTimeout(() => {
        this.#timers.delete(conv.key);
        const { client, list, view, known } = this.#host;
        if (this.#host.stopped() || !list.holds(conv)) return;
        client.presence(conv.topic).then(
          (members) => {
            conv.members = members;
            for (const m of members) known.add(m.user.id);
            view.knownUserOptions(known);
            if (list.current() === conv) view.presenceList(conv);
          },
          () => {}, // offline: the next reconnect refreshes it
        );
      }, 50),
    );
  }

  /** Forgets every pending refresh. */
  clear(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }
}
