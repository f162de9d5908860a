/**
 * What the demo shows about its connection, driven by the SDK's events: the status pill and log
 * (connecting, connected, reconnecting, "nothing missed" once every subscription recovered after
 * a reconnect, disconnected), and the end of the session (4001, or a failed attempt while the
 * session is gone).
 */
import type { SwitchboardClient, User } from "../../client/index.ts";
import { currentUser } from "./auth.ts";
import type { StatusView } from "./status.ts";

export interface ConnectionHost {
  me: User;
  status: StatusView;
  /** True once the chat stopped (signed out, session ended): events change nothing any more. */
  stopped(): boolean;
  stop(): void;
  /** The session is gone (4001: signed out elsewhere, expired, revoked). */
  sessionEnded(): void;
  /** Topics acknowledged before a reconnect: each reports through recovered() once resubscribed. */
  resumingTopics(): string[];
}

export class ConnectionStatus {
  #opens = 0;
  #attemptOpened = false;
  #lastSessionCheck = 0;
  /** After a reconnect: topics whose resubscription has not reported yet, and whether all recovered. */
  #recovering: { topics: Set<string>; lost: boolean } | null = null;

  constructor(
    client: SwitchboardClient,
    private readonly host: ConnectionHost,
  ) {
    const status = host.status;
    client.on("connecting", ({ attempt }) => {
      this.#attemptOpened = false;
      status.set("connecting", attempt > 0 ? `Connecting… (attempt ${attempt + 1})` : "Connecting…");
    });
    client.on("open", (welcome) => this.#opened(welcome));
    client.on("closed", ({ code, reconnect }) => this.#closed(code, reconnect));
    client.on("reconnecting", ({ delay, attempt }) => {
      if (host.stopped()) return;
      const when = delay < 1000 ? "" : ` in ${Math.round(delay / 1000)} s`;
      status.set("reconnecting", `Reconnecting${when}${attempt > 1 ? ` (attempt ${attempt})` : ""}…`);
    });
    client.on("unauthorized", () => {
      if (host.stopped()) return;
      host.stop();
      host.sessionEnded();
    });
    client.on("disconnected", () => {
      if (host.stopped()) return;
      status.set("closed", "Disconnected by the server");
      status.log("The server disconnected this tab (4003); reload the page to connect again", "warn");
    });
    client.on("error", (e) => status.log(`Server said: ${e.message}`, "warn"));
  }

  /** A resubscription after a reconnect reported (onRecovered). */
  recovered(topic: string, ok: boolean): void {
    const r = this.#recovering;
    if (!r || !r.topics.has(topic)) return;
    r.topics.delete(topic);
    if (!ok) r.lost = true;
    if (r.topics.size === 0) this.#finishRecovery();
  }

  #opened(welcome: { user: User; instance: string; region: string }): void {
    const { host } = this;
    if (welcome.user.id !== host.me.id) {
      // The cookie now belongs to someone else (signed in as another user in another tab).
      host.stop();
      location.reload();
      return;
    }
    this.#opens++;
    this.#attemptOpened = true;
    host.status.where(welcome.instance, welcome.region);
    if (this.#opens === 1) {
      host.status.set("open", "Connected");
      host.status.log(`Connected to ${welcome.instance} (${welcome.region})`, "good");
      return;
    }
    host.status.set("open", "Reconnected · recovering missed messages…");
    host.status.log(`Reconnected to ${welcome.instance} (${welcome.region})`, "good");
    this.#recovering = { topics: new Set(host.resumingTopics()), lost: false };
    if (this.#recovering.topics.size === 0) this.#finishRecovery();
  }

  #closed(code: number, reconnect: boolean): void {
    const { host } = this;
    if (host.stopped()) return;
    this.#recovering = null;
    // An attempt that never got `welcome`: a refused upgrade (a page sees only 1006) or, with the
    // cookie gone, an unauthenticated socket closed with 4002. If the session is over (revoked
    // while this tab was away, cleared by a sign-out elsewhere) the SDK would retry forever.
    if (reconnect && !this.#attemptOpened) this.#checkSession();
    if (!reconnect) {
      if (code === 4001 || code === 4003) return; // "unauthorized" / "disconnected" follows
      host.status.set("closed", "Disconnected");
      host.status.log(`Connection closed (${code}); reload the page to try again`, "warn");
      return;
    }
    // Failed attempts are shown by the pill's attempt count; log only the loss of a working socket.
    if (this.#attemptOpened) host.status.log(`Connection lost (${code})`, "warn");
  }

  #finishRecovery(): void {
    const lost = this.#recovering?.lost ?? false;
    this.#recovering = null;
    if (lost) return; // the resync handler already said so
    this.host.status.set("recovered", "Reconnected · nothing missed");
    this.host.status.log("Every room and the inbox replayed what was missed", "good");
  }

  /** At most every 3 s: a 401 from /auth/me ends the chat; an unreachable server lets the SDK keep trying. */
  #checkSession(): void {
    if (Date.now() - this.#lastSessionCheck < 3000) return;
    this.#lastSessionCheck = Date.now();
    const { host } = this;
    currentUser().then(
      (user) => {
        if (host.stopped() || user?.id === host.me.id) return;
        host.stop();
        if (user === null) host.sessionEnded();
        else location.reload(); // the cookie now belongs to another user (signed in elsewhere)
      },
      () => {}, // the server is unreachable: keep reconnecting
    );
  }
}
