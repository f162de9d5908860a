/** Renders the chat's state into the page's markup (src/demo/page.ts). Text only via textContent. */
import type { User } from "../../client/index.ts";
import { byId, el, isNearBottom, timeEl } from "./dom.ts";
import { sortedMembers, type Conversation, type Line, type Pending } from "./model.ts";

export class ChatView {
  readonly rooms = byId<HTMLUListElement>("room-list");
  readonly dms = byId<HTMLUListElement>("dm-list");
  readonly title = byId("conv-title");
  readonly subtitle = byId("conv-subtitle");
  readonly leave = byId<HTMLButtonElement>("leave-room");
  readonly inviteForm = byId<HTMLFormElement>("invite-form");
  readonly inviteNote = byId("invite-note");
  readonly messages = byId<HTMLOListElement>("messages");
  readonly composerInput = byId<HTMLInputElement>("composer-input");
  readonly presenceTitle = byId("presence-title");
  readonly presence = byId<HTMLUListElement>("presence-list");
  readonly knownUsers = byId<HTMLDataListElement>("known-users");

  constructor(private readonly me: User) {}

  /** The two conversation lists; `onSelect` gets the clicked conversation's key. */
  sidebar(conversations: Iterable<Conversation>, activeKey: string | null, onSelect: (key: string) => void): void {
    const rooms: HTMLLIElement[] = [];
    const dms: HTMLLIElement[] = [];
    for (const conv of conversations) {
      const button = el("button", { class: conv.private ? "conv private" : "conv", attrs: { type: "button" }, data: { key: conv.key } }, el("span", { class: "conv-name", text: conv.title }));
      if (conv.key === activeKey) button.setAttribute("aria-current", "true");
      if (conv.private) button.append(el("span", { class: "conv-tag", text: "private" }));
      if (conv.unread > 0) {
        button.append(el("span", { class: "badge", text: String(conv.unread), attrs: { "aria-label": `${conv.unread} unread` } }));
      }
      if (conv.kind === "room" && !conv.joined) button.append(el("span", { class: "conv-note", text: "joining…" }));
      button.addEventListener("click", () => onSelect(conv.key));
      (conv.kind === "room" ? rooms : dms).push(el("li", {}, button));
    }
    this.rooms.replaceChildren(...(rooms.length ? rooms : [el("li", { class: "empty", text: "No rooms yet" })]));
    this.dms.replaceChildren(...(dms.length ? dms : [el("li", { class: "empty", text: "No conversations yet" })]));
  }

  /** Shows `conv` in the main pane (or an empty state). */
  conversation(conv: Conversation | null): void {
    if (!conv) {
      this.title.textContent = "No conversation";
      this.subtitle.textContent = "Join a room or message someone to start.";
      this.leave.hidden = true;
      this.inviteForm.hidden = true;
      this.messages.replaceChildren();
      this.composerInput.disabled = true;
      this.composerInput.placeholder = "";
      return;
    }
    this.title.textContent = conv.title;
    this.subtitle.textContent = conv.private
      ? `Private room · only invited users see it · topic ${conv.topic}`
      : conv.kind === "room" ? `Room · topic ${conv.topic}` : `Direct messages · inbox ${conv.topic}`;
    this.leave.hidden = conv.kind !== "room";
    this.inviteForm.hidden = conv.private !== true;
    this.inviteNote.textContent = "";
    this.composerInput.disabled = false;
    this.composerInput.placeholder = `Message ${conv.title}`;
    this.messages.replaceChildren(...conv.lines.map((l) => this.line(l)), ...[...conv.pending.values()].map((p) => this.pendingLine(p)));
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  /** Appends the newest line of the shown conversation, keeping the pending ones last. */
  appendLast(conv: Conversation): void {
    const stick = isNearBottom(this.messages);
    const last = conv.lines.at(-1);
    for (const node of [...this.messages.querySelectorAll("li.pending")]) node.remove();
    if (last) this.messages.append(this.line(last));
    for (const p of conv.pending.values()) this.messages.append(this.pendingLine(p));
    while (this.messages.children.length > conv.lines.length + conv.pending.size) this.messages.firstElementChild?.remove();
    if (stick) this.messages.scrollTop = this.messages.scrollHeight;
  }

  /** Re-renders just the pending lines (sent, failed). */
  pending(conv: Conversation): void {
    for (const node of [...this.messages.querySelectorAll("li.pending")]) node.remove();
    for (const p of conv.pending.values()) this.messages.append(this.pendingLine(p));
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  presenceList(conv: Conversation | null): void {
    if (!conv || conv.kind !== "room") {
      this.presenceTitle.textContent = "In this conversation";
      const peer = conv ? conv.key.slice("dm:".length) : null;
      this.presence.replaceChildren(...(peer ? [this.member(this.me, 1), ...(peer === this.me.id ? [] : [this.member({ id: peer, name: peer }, 0)])] : []));
      return;
    }
    this.presenceTitle.textContent = `In ${conv.title} (${conv.members.length})`;
    const items = sortedMembers(conv.members, this.me).map((m) => this.member(m.user, m.connections));
    this.presence.replaceChildren(...(items.length ? items : [el("li", { class: "empty", text: conv.joined ? "Nobody here" : "Joining…" })]));
  }

  knownUserOptions(names: Iterable<string>): void {
    this.knownUsers.replaceChildren(...[...names].sort().map((n) => el("option", { attrs: { value: n } })));
  }

  private member(user: User, connections: number): HTMLLIElement {
    const you = user.id === this.me.id;
    const detail = connections > 1 ? `${connections} connections` : connections === 1 ? "online" : "direct messages";
    return el(
      "li",
      { class: you ? "member me" : "member", data: { user: user.id } },
      el("span", { class: "avatar", text: user.name.slice(0, 1).toUpperCase(), attrs: { "aria-hidden": "true" } }),
      el("span", { class: "member-name", text: user.name }),
      you ? el("span", { class: "you", text: "you" }) : null,
      el("span", { class: "member-detail", text: detail }),
    );
  }

  private line(line: Line): HTMLLIElement {
    if (line.kind === "system") {
      return el("li", { class: `sys sys-${line.tone}` }, el("span", { class: "sys-text", text: line.text }), " ", timeEl(line.ts));
    }
    const data: Record<string, string> = { from: line.from };
    if (line.seq !== null) data.seq = String(line.seq);
    return el(
      "li",
      { class: line.mine ? "msg mine" : "msg", data },
      el("div", { class: "meta" }, el("span", { class: "sender", text: line.mine ? `${line.from} (you)` : line.from }), " ", timeEl(line.ts)),
      el("p", { class: "text", text: line.text }),
    );
  }

  private pendingLine(p: Pending): HTMLLIElement {
    return el(
      "li",
      { class: p.failed ? "msg mine pending failed" : "msg mine pending", data: { id: p.id } },
      el("div", { class: "meta" }, el("span", { class: "sender", text: `${this.me.name} (you)` }), " ", el("span", { class: "state", text: p.failed ? `not sent: ${p.failed}` : "sending…" })),
      el("p", { class: "text", text: p.text }),
    );
  }
}
