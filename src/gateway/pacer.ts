/**
 * Sends a long run of frames (a `since` replay) as fast as the peer reads them (SPEC §8: replays
 * are paced by the socket's drain instead of ending in 4009): a frame is sent when it fits below
 * `high` buffered bytes and the last one was not queued by Bun (-1), else after Bun's `drain`. A peer that reads nothing for `stallMs` is reported
 * as stalled.
 */
export interface PacedSocket {
  bufferedAmount(): number;
  /** Bun's send status: bytes sent, -1 queued under backpressure, 0 dropped. */
  send(frame: string): number;
  /** False once the socket is closing or closed. */
  live(): boolean;
}

export type PaceOutcome = "sent" | "gone" | "stalled";

export class Pacer {
  private waiters: ((ok: boolean) => void)[] = [];

  constructor(private readonly socket: PacedSocket) {}

  async send(frames: string[], high: number, stallMs: number): Promise<PaceOutcome> {
    let queued = false;
    for (const frame of frames) {
      // Room for the whole frame below `high` (a frame larger than it goes alone, into an empty buffer).
      while (this.socket.live() && (queued || (this.socket.bufferedAmount() > 0 && this.socket.bufferedAmount() + frame.length > high))) {
        if (!(await this.drained(stallMs))) return this.socket.live() ? "stalled" : "gone";
        queued = false;
      }
      if (!this.socket.live()) return "gone";
      // -1: Bun queued it (the kernel is full), and its buffered amount may not show it yet in this
      // tick: wait for the drain before the next frame.
      queued = this.socket.send(frame) === -1;
    }
    return this.socket.live() ? "sent" : "gone";
  }

  /** Bun `drain`: the socket's buffer went down. */
  onDrain(): void {
    for (const wake of this.waiters.splice(0)) wake(true);
  }

  /** The socket closed: every wait ends. */
  close(): void {
    for (const wake of this.waiters.splice(0)) wake(false);
  }

  /** True at the next drain; false after `timeoutMs` or when the socket closes. */
  private drained(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = (ok: boolean) => {
        clearTimeout(timer);
        resolve(ok);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(wake);
    });
  }
}
