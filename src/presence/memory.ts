/** Presence for one process: connection entries per topic, grouped by user. */
import type { PresenceMember, User } from "../protocol/frames.ts";
import type { Presence } from "./presence.ts";

interface Membership {
  user: User;
  connections: Set<string>;
}

export class MemoryPresence implements Presence {
  /** topic → user id → membership */
  private readonly topics = new Map<string, Map<string, Membership>>();

  async start(): Promise<void> {}

  async join(topic: string, connectionId: string, user: User): Promise<boolean> {
    let users = this.topics.get(topic);
    if (users === undefined) this.topics.set(topic, (users = new Map()));
    const existing = users.get(user.id);
    if (existing !== undefined) {
      existing.connections.add(connectionId);
      return false;
    }
    users.set(user.id, { user, connections: new Set([connectionId]) });
    return true;
  }

  async leave(topic: string, connectionId: string, user: User): Promise<boolean> {
    const users = this.topics.get(topic);
    const membership = users?.get(user.id);
    if (users === undefined || membership === undefined || !membership.connections.delete(connectionId)) return false;
    if (membership.connections.size > 0) return false;
    users.delete(user.id);
    if (users.size === 0) this.topics.delete(topic);
    return true;
  }

  async members(topic: string): Promise<PresenceMember[]> {
    const users = this.topics.get(topic);
    if (users === undefined) return [];
    return [...users.values()].map((m) => ({ user: m.user, connections: m.connections.size }));
  }

  async close(): Promise<void> {
    this.topics.clear();
  }
}
