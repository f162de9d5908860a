/** Small pieces of the client that touch the platform: sockets, URLs, randomness, network events. */

/** Stops a socket from reaching the client any more (it is being abandoned). */
export function detach(ws: WebSocket): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}

export function withTicket(url: string, ticket: string): string {
  const u = new URL(url);
  u.searchParams.set("ticket", ticket);
  return u.href;
}

/** 128 random bits as hex: crypto.getRandomValues works in every browser context (randomUUID needs https). */
export function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

export function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The browser's `online`/`offline` events, attached while the client runs. A null target does nothing. */
export class NetworkWatch {
  #attached = false;
  readonly #online: () => void;
  readonly #offline: () => void;

  constructor(
    private readonly target: EventTarget | null,
    handlers: { online(): unknown; offline(): unknown },
  ) {
    this.#online = () => void handlers.online();
    this.#offline = () => void handlers.offline();
  }

  attach(): void {
    if (this.#attached || !this.target) return;
    this.target.addEventListener("online", this.#online);
    this.target.addEventListener("offline", this.#offline);
    this.#attached = true;
  }

  detach(): void {
    if (!this.#attached || !this.target) return;
    this.target.removeEventListener("online", this.#online);
    this.target.removeEventListener("offline", this.#offline);
    this.#attached = false;
  }
}
