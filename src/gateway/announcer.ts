/**
 * Join/leave fan-out is bounded (SPEC §8): a user who subscribes and unsubscribes a topic in a
 * loop is announced at most once per `intervalMs` per topic. The first change goes out at once;
 * changes within the interval after it are held, and when it ends only the user's state then is
 * announced, if it differs from the last one announced (a join and a leave in between cancel out).
 */
import type { User } from "../protocol/frames.ts";
import type { PresenceChange } from "./presence-ledger.ts";
import { every } from "../shared-clock.ts";

interface Entry {
  lastAt: number;
  announced: PresenceChange;
  wanted: PresenceChange;
  user: User;
  timer: ReturnType<typeof setTimeout> | null;
}

export class Announcer {
  private readonly entries = new Map<string, Entry>();
  private readonly stopSweeps: () => void;

  constructor(
    private readonly send: (topic: string, type: PresenceChange, user: User) => void,
    private readonly intervalMs = 1000,
  ) {
    this.stopSweeps = every(Math.max(1000, 5 * intervalMs), () => this.sweep(Date.now()));
  }

  announce(topic: string, type: PresenceChange, user: User): void {
    const key = `${topic}\n${user.id}`;
    const now = Date.now();
    const entry = this.entries.get(key);
    if (entry === undefined || (entry.timer === null && now - entry.lastAt >= this.intervalMs)) {
      this.entries.set(key, { lastAt: now, announced: type, wanted: type, user, timer: null });
      this.send(topic, type, user);
      return;
    }
    entry.wanted = type;
    entry.user = user;
    if (entry.timer === null) entry.timer = setTimeout(() => this.flush(topic, key), entry.lastAt + this.intervalMs - now);
  }

  /** Sends every held change now (the process is going: other processes must hear its leaves), then stops. */
  close(): void {
    this.stopSweeps();
    for (const [key, entry] of this.entries) {
      if (entry.timer === null) continue;
      clearTimeout(entry.timer);
      this.flush(key.slice(0, key.indexOf("\n")), key);
    }
    this.entries.clear();
  }

  private flush(topic: string, key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    entry.timer = null;
    if (entry.wanted === entry.announced) return;
    entry.announced = entry.wanted;
    entry.lastAt = Date.now();
    this.send(topic, entry.wanted, entry.user);
  }

  /** Forgets users whose last announcement is older than the interval and who wait for nothing. */
  private sweep(now: number): void {
    for (const [key, entry] of this.entries) if (entry.timer === null && now - entry.lastAt >= this.intervalMs) this.entries.delete(key);
  }
}
