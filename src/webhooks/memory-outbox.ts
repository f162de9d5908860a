/**
 * MemoryOutbox: the outbox of a deployment without Redis, which is one process. One lane, held
 * for the process's lifetime; entries live in memory, so whatever is not delivered when the
 * process exits is lost (the Redis outbox is the durable one). At most `maxEntries` (default
 * 100 000) wait at once: past that, `append` refuses (the event is counted as lost), so a receiver
 * that is down for an hour cannot grow the process without bound.
 */
import type { WebhookEvent } from "./events.ts";
import type { Outbox, OutboxEntry, OutboxStats } from "./outbox.ts";

const LANE = "memory";

export class MemoryOutbox implements Outbox {
  constructor(private readonly maxEntries = 100_000) {}

  /** Stored and not done, in append order (Map keeps insertion order). */
  private readonly entries = new Map<string, OutboxEntry>();
  /** Appended and not yet taken. */
  private queue: OutboxEntry[] = [];
  private next = 0;
  private closed = false;
  private wake: (() => void) | null = null;

  async start(): Promise<void> {}

  async append(key: string, event: WebhookEvent): Promise<void> {
    if (this.closed) throw new Error("webhook outbox is closed");
    if (this.entries.size >= this.maxEntries) throw new Error(`webhook outbox is full (${this.maxEntries} events waiting)`);
    const entry: OutboxEntry = { id: String(++this.next), lane: LANE, key, event, body: JSON.stringify(event) };
    this.entries.set(entry.id, entry);
    this.queue.push(entry);
    this.wake?.();
  }

  async take(max: number, waitMs: number): Promise<OutboxEntry[]> {
    if (this.queue.length === 0 && waitMs > 0 && !this.closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
      });
      this.wake = null;
    }
    if (this.closed) return [];
    return this.queue.splice(0, Math.max(0, max));
  }

  holds(entry: OutboxEntry): boolean {
    return !this.closed && this.entries.has(entry.id);
  }

  async done(entry: OutboxEntry): Promise<void> {
    this.entries.delete(entry.id);
  }

  async stats(): Promise<OutboxStats> {
    const oldest = this.entries.values().next();
    return { length: this.entries.size, oldestAt: oldest.done ? null : oldest.value.event.at };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
  }
}
