/**
 * One socket's frames (and internal jobs, such as the welcome), handled one at a time in arrival
 * order: Bun runs async `message` handlers concurrently. Past `pauseAt` waiting items the socket
 * stops being read — TCP backpressure to the client — until the queue is empty again.
 */
export type Job = () => Promise<void>;

/**
 * What the queue calls. The method names are the queue's own so that a connection can pass
 * itself (no closures per socket: idle memory).
 */
export interface FrameQueueOptions {
  handleFrame(frame: string): Promise<void>;
  /** The socket to pause and resume; null while there is none. */
  pausable(): { pause(): void; resume(): void } | null;
  /** False once the socket is closing: what is left is not handled. */
  queueLive(): boolean;
  /**
   * The queue ran out and is not running: its owner may drop it and make a new one for the next
   * item (an idle socket then holds no queue: idle memory). Nothing is lost or reordered, since
   * nothing waits in this one.
   */
  queueDrained(queue: FrameQueue): void;
  /** A frame or job threw: the queue stopped, and the socket should close. */
  queueFailed(error: unknown): void;
}

/** Past this many queued frames the socket stops being read until the queue drains. */
const PAUSE_AT = 32;

export class FrameQueue {
  /** Null while empty: an idle socket holds no array. */
  private items: (string | Job)[] | null = null;
  private running = false;
  private paused = false;

  constructor(private readonly options: FrameQueueOptions) {}

  push(item: string | Job): void {
    const items = (this.items ??= []);
    items.push(item);
    if (items.length >= PAUSE_AT && !this.paused) {
      const socket = this.options.pausable();
      if (socket !== null) {
        this.paused = true;
        socket.pause();
      }
    }
    if (!this.running) void this.pump();
  }

  /** Drops everything waiting (the socket closed). */
  clear(): void {
    this.items = null;
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      let items: (string | Job)[] | null;
      while ((items = this.items) !== null && items.length > 0 && this.options.queueLive()) {
        const next = items.shift()!;
        await (typeof next === "string" ? this.options.handleFrame(next) : next());
        if (this.paused && (this.items === null || this.items.length === 0)) {
          const socket = this.options.pausable();
          if (socket !== null) {
            this.paused = false;
            socket.resume();
          }
        }
      }
      if (this.items !== null && this.items.length === 0) this.items = null;
      this.running = false;
      if (this.items === null) this.options.queueDrained(this);
    } catch (error) {
      this.options.queueFailed(error);
    } finally {
      this.running = false;
    }
  }
}
