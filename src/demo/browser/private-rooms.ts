/**
 * The demo's private rooms, page side (server side: src/http/demo-private.ts). A room is a
 * `private:<name>-<random>` topic that only holders of a grant reach. The page keeps its grants
 * per user in localStorage and shows them to the server for every credential it asks for: the
 * ticket each connection opens with, and the token an open socket takes in-band after a grant
 * arrived. Grants are signed by the server; the page only carries them.
 */
import type { SwitchboardClient } from "../../client/index.ts";
import { SwitchboardClientError } from "../../client/index.ts";

export interface HeldGrant {
  topic: string;
  grant: string;
}

/** What the server puts in the invitee's inbox before subscribing it. */
export interface InviteData {
  type: "private-invite";
  topic: string;
  grant: string;
  by: string;
}

export function isInvite(data: unknown): data is InviteData {
  const d = data as Partial<InviteData> | null;
  return d !== null && typeof d === "object" && d.type === "private-invite" && typeof d.topic === "string" && typeof d.grant === "string";
}

export const isPrivateTopic = (topic: string): boolean => topic.startsWith("private:");

/** Whether the server offers private rooms (the demo as shipped: `data-private-rooms` on the body). */
export function privateRoomsOn(): boolean {
  return document.body.dataset.privateRooms === "on";
}

const storageKey = (userId: string) => `switchboard-demo:grants:${userId}`;

export class GrantBook {
  constructor(private readonly userId: string) {}

  all(): HeldGrant[] {
    try {
      const saved = JSON.parse(localStorage.getItem(storageKey(this.userId)) ?? "[]") as unknown;
      if (Array.isArray(saved)) return saved.filter((g): g is HeldGrant => typeof g?.topic === "string" && typeof g?.grant === "string" && isPrivateTopic(g.topic));
    } catch {}
    return [];
  }

  grantFor(topic: string): string | null {
    return this.all().find((g) => g.topic === topic)?.grant ?? null;
  }

  add(held: HeldGrant): void {
    this.#save([...this.all().filter((g) => g.topic !== held.topic), held]);
  }

  remove(topic: string): void {
    this.#save(this.all().filter((g) => g.topic !== topic));
  }

  #save(list: HeldGrant[]): void {
    try {
      localStorage.setItem(storageKey(this.userId), JSON.stringify(list));
    } catch {}
  }
}

async function post<T>(path: string, body: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  } catch {
    throw new SwitchboardClientError("unavailable", "the server could not be reached");
  }
  const answer = (await res.json().catch(() => null)) as (T & { error?: { code?: string; message?: string } }) | null;
  if (res.ok && answer !== null) return answer;
  const code = res.status === 401 ? "unauthorized" : res.status >= 500 || res.status === 429 ? "unavailable" : "forbidden";
  throw new SwitchboardClientError(code, answer?.error?.message ?? `${path} answered ${res.status}`);
}

/** The ticket a connection opens with: the demo's rights plus every held grant's room. */
export async function ticketWith(book: GrantBook): Promise<string> {
  return (await post<{ ticket: string }>("/demo/ticket", { grants: book.all().map((g) => g.grant) })).ticket;
}

/** Gives the open socket the rights of every held grant, in-band (SPEC §4 refresh). */
export async function refreshRights(client: SwitchboardClient, book: GrantBook): Promise<void> {
  if (client.state !== "open") return; // the next connection's ticket carries them
  const { token } = await post<{ token: string }>("/demo/token", { grants: book.all().map((g) => g.grant) });
  await client.refreshWith(token);
}

export function createRoom(name: string): Promise<HeldGrant> {
  return post<HeldGrant>("/demo/rooms", { name });
}

export function invite(topic: string, user: string, grant: string): Promise<{ sockets: number }> {
  return post<{ sockets: number }>("/demo/invite", { topic, user, grant });
}
