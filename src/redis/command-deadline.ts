/**
 * A Redis command's deadline that an event-loop stall cannot fake. ioredis's `commandTimeout`
 * rejects a command when its timer fires, even when the reply already waits in the socket: after
 * a stall longer than the timeout (a burst of thousands of handshakes, a reconnect storm, a full
 * collection) the timer and the reply are due in the same turn, and Bun may run the timer first.
 * Checked under Bun 1.4.5: a GET sent just before a 700 ms stall, answered by Redis within
 * 0.1 ms, failed with "Command timed out" at a 500 ms timeout. Clients were then told
 * `unavailable` by a process whose Redis was fine (a resubscription in a reconnect storm, a
 * publish, the deployment heartbeat).
 *
 * Here the timer, when it fires, waits before it rejects: one more turn of the loop, so the
 * replies that arrived meanwhile are read first, and when it fired late (this process was
 * stalled), as long again as it was late, at most the timeout: a command whose write or reply
 * waited behind this process's own work gets back the time it lost to it, not to Redis. A Redis
 * that does not answer is still refused after the timeout and one turn when the process is not
 * stalled, and within twice the timeout when it is. Same one timer per command as before (the
 * second replaces the first, and ioredis clears it when the command settles). `within` below
 * does the same for deadlines around several commands.
 */
import { Command } from "ioredis";

interface TimedCommand {
  _commandTimeoutTimer?: ReturnType<typeof setTimeout>;
  isSettled: boolean;
  reject(error: Error): void;
}

export function patchCommandTimeout(): void {
  const prototype = Command.prototype as unknown as { setTimeout(ms: number): void };
  if (typeof prototype.setTimeout !== "function") throw new Error("ioredis's Command has no setTimeout: check src/redis/command-deadline.ts against this ioredis version");
  prototype.setTimeout = function (this: TimedCommand, ms: number): void {
    if (this._commandTimeoutTimer !== undefined) return;
    const due = performance.now() + ms;
    this._commandTimeoutTimer = setTimeout(() => {
      if (this.isSettled) return;
      this._commandTimeoutTimer = setTimeout(() => {
        if (!this.isSettled) this.reject(new Error("Command timed out"));
      }, grace(due, ms));
    }, ms);
  };
}

/** A timer firing this much after it was due says the process was stalled, not that it was busy. */
const LATE_MS = 20;

/** How long a deadline that fired at `due` still waits: one turn, or the time it fired late (≤ `ms`). */
export function grace(due: number, ms: number): number {
  const late = performance.now() - due;
  return late > LATE_MS ? Math.min(late, ms) : 0;
}

patchCommandTimeout();

/**
 * Rejects after `ms` even if the command is still queued: with auto-pipelining, ioredis sends one
 * pipeline at a time per connection, so while Redis stalls, a command queued behind a pipeline that
 * is timing out waits for that one's timeout before its own starts (2× the deadline, measured). The
 * command may still be sent and applied later (docs/protocol.md: retry with the same `key`).
 * Counted as above: a reply read in the turn after the timer fired, or within the time it fired
 * late, still wins.
 */
export function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const due = performance.now() + ms;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timer = setTimeout(() => reject(new Error("Command timed out")), grace(due, ms));
    }, ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
