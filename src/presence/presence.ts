/**
 * Who is subscribed to a topic, across every machine. Entries are per connection; a user is a
 * member while at least one of its connections is, so `join`/`leave` report the transitions
 * that the hub turns into one `presence.join` / `presence.leave` per user.
 *
 * Implementations: MemoryPresence, RedisPresence. Both pass test/suites/presence.suite.ts.
 */
import type { PresenceMember, User } from "../protocol/frames.ts";

export interface PresenceEvents {
  /**
   * A user left because the machine holding its last connections stopped renewing its lease
   * (crashed): reported by one surviving process, within 30 s of the crash. Also reported by a
   * closing process for the entries it still held (their own leaves never completed).
   */
  onExpired(topic: string, user: User): void;
}

export interface Presence {
  start(events: PresenceEvents): Promise<void>;
  /** Adds a connection. True when it is the user's first connection in the topic (a join). */
  join(topic: string, connectionId: string, user: User): Promise<boolean>;
  /** Removes a connection. True when it was the user's last one in the topic (a leave). */
  leave(topic: string, connectionId: string, user: User): Promise<boolean>;
  members(topic: string): Promise<PresenceMember[]>;
  /** Removes this process's entries (drain) and stops its timers. */
  close(): Promise<void>;
}
