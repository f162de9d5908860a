/**
 * Sends a long run of frames (a `since` replay) as fast as the peer reads them (SPEC §8: replays
 * are paced by the socket's drain instead of ending in 4009): below `high` buffered bytes it
 * sends, above it waits for Bun's `drain`. A peer that reads nothing for `stallMs` is reported
 * as stalled.
 */
export interface PacedSocket {
  bufferedAmount(): number;
  send(frame: string): void;
  /** False once the socket is closing or closed. */
  live(): boolean;
}

export type PaceOutcome = "sent" | "gone" | "stalled";

export class Pacer {
  private waiters: ((ok: boolean) => void)[] = [];

  constructor(private readonly socket: PacedSocket) {}

  async send(frames: string[], high: number, stallMs: number): Promise<PaceOutcome> {
    for (const frame of frames) {
      while (this.socket.live() && this.socket.bufferedAmount() > high) {
        if (!(await this.drained(stallMs))) return this.socket.live() ? "stalled" : "gone";
      }
      if (!this.socket.live()) return "gone";
      this.socket.send(frame);
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
