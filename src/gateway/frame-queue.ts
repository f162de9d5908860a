/**
 * One socket's frames (and internal jobs, such as the welcome), handled one at a time in arrival
 * order: Bun runs async `message` handlers concurrently. Past `pauseAt` waiting items the socket
 * stops being read — TCP backpressure to the client — until the queue is empty again.
 */
export type Job = () => Promise<void>;

export interface FrameQueueOptions {
  handle(frame: string): Promise<void>;
  /** The socket to pause and resume; null while there is none. */
  socket(): { pause(): void; resume(): void } | null;
  /** False once the socket is closing: what is left is not handled. */
  live(): boolean;
  /** A frame or job threw: the queue stopped, and the socket should close. */
  failed(error: unknown): void;
}

/** Past this many queued frames the socket stops being read until the queue drains. */
const PAUSE_AT = 32;

export class FrameQueue {
  private readonly items: (string | Job)[] = [];
  private running = false;
  private paused = false;

  constructor(
    private readonly options: FrameQueueOptions,
    private readonly pauseAt = PAUSE_AT,
  ) {}

  push(item: string | Job): void {
    this.items.push(item);
    const socket = this.options.socket();
    if (this.items.length >= this.pauseAt && !this.paused && socket !== null) {
      this.paused = true;
      socket.pause();
    }
    if (!this.running) void this.pump();
  }

  /** Drops everything waiting (the socket closed). */
  clear(): void {
    this.items.length = 0;
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      while (this.items.length > 0 && this.options.live()) {
        const next = this.items.shift()!;
        await (typeof next === "string" ? this.options.handle(next) : next());
        const socket = this.options.socket();
        if (this.paused && this.items.length === 0 && socket !== null) {
          this.paused = false;
          socket.resume();
        }
      }
    } catch (error) {
      this.options.failed(error);
    } finally {
      this.running = false;
    }
  }
}
