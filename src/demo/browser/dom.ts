/** Tiny DOM helpers: every text goes through textContent, never innerHTML. */

/** The element with `id`; throws when the page's markup and the script disagree. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`demo page: #${id} is missing`);
  return found as T;
}

type Child = Node | string | null | undefined | false;

/** `el("li", { class: "msg", data: { seq: "3" } }, "text", child)` */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { class?: string; text?: string; attrs?: Record<string, string>; data?: Record<string, string> } = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.class) node.className = props.class;
  if (props.text !== undefined) node.textContent = props.text;
  for (const [k, v] of Object.entries(props.attrs ?? {})) node.setAttribute(k, v);
  for (const [k, v] of Object.entries(props.data ?? {})) node.dataset[k] = v;
  for (const child of children) if (child) node.append(child);
  return node;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** A `<time>` showing the clock time, with the full date in its title and datetime. */
export function timeEl(ts: number): HTMLTimeElement {
  const d = new Date(ts);
  return el("time", { text: timeFormat.format(d), attrs: { datetime: d.toISOString(), title: fullFormat.format(d) } });
}

/** Whether the user is reading older messages (then new ones must not yank the view down). */
export function isNearBottom(node: HTMLElement): boolean {
  return node.scrollHeight - node.scrollTop - node.clientHeight < 80;
}
