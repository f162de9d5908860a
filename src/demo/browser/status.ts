/**
 * The visible connection state: a pill in the top bar (`#status[data-state]`, announced politely
 * to screen readers), the instance the socket is on, and a short log of connection events.
 */
import { byId, el, timeEl } from "./dom.ts";

/**
 * - `connecting`: an attempt is under way;
 * - `open`: welcomed (first connection of this page, or recovering after a reconnect);
 * - `reconnecting`: waiting for the next attempt;
 * - `recovered`: reconnected and every room and the inbox replayed what was missed;
 * - `resync`: continuity was lost on a topic (history gone): messages may be missing;
 * - `closed`: the client stopped (a fatal close code);
 * - `signed-out`: no session.
 */
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "recovered" | "resync" | "closed" | "signed-out";

const LOG_LIMIT = 30;

export class StatusView {
  readonly #pill = byId("status");
  readonly #text = byId("status-text");
  readonly #instance = byId("conn-instance");
  readonly #region = byId("conn-region");
  readonly #log = byId<HTMLOListElement>("conn-log");

  get state(): ConnectionState {
    return this.#pill.dataset.state as ConnectionState;
  }

  set(state: ConnectionState, text: string): void {
    this.#pill.dataset.state = state;
    if (this.#text.textContent !== text) this.#text.textContent = text;
  }

  where(instance: string, region: string): void {
    this.#instance.textContent = instance;
    this.#region.textContent = region;
  }

  log(text: string, tone: "info" | "good" | "warn" = "info"): void {
    this.#log.prepend(el("li", { class: `log-${tone}` }, timeEl(Date.now()), " ", text));
    while (this.#log.children.length > LOG_LIMIT) this.#log.lastElementChild?.remove();
  }

  clear(): void {
    this.#log.replaceChildren();
    this.where("—", "—");
  }
}
