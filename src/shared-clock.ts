/**
 * Periodic duties that share their wake-ups (bench/README.md "Idle"). Every duty whose period is
 * a whole number of seconds runs on one timer a second, in the same turn of the event loop as the
 * others due then: an idle process wakes once a second for its heartbeat, its canaries, its sweep
 * and its registry read, not once for each (and their Redis replies come back together). Other
 * periods get a timer per period, shared the same way.
 *
 * A duty's first run comes one period after it was added, give or take the part of a second the
 * shared timer had already run. The timers are unref'd: a duty never keeps a process alive.
 */

const SECOND_MS = 1000;

interface Duty {
  run: () => void;
  /** Runs on every `ticks`-th tick of its clock. */
  ticks: number;
  left: number;
}

interface Clock {
  timer: ReturnType<typeof setInterval>;
  duties: Set<Duty>;
}

const clocks = new Map<number, Clock>();

/** Runs `run` every `periodMs` until the returned function is called. */
export function every(periodMs: number, run: () => void): () => void {
  const base = periodMs % SECOND_MS === 0 ? SECOND_MS : periodMs;
  const ticks = Math.max(1, Math.round(periodMs / base));
  const duty: Duty = { run, ticks, left: ticks };
  let clock = clocks.get(base);
  if (clock === undefined) {
    const duties = new Set<Duty>();
    const timer = setInterval(() => tick(duties), base);
    (timer as { unref?(): void }).unref?.();
    clocks.set(base, (clock = { timer, duties }));
  }
  clock.duties.add(duty);
  return () => {
    const current = clocks.get(base);
    if (current === undefined || !current.duties.delete(duty) || current.duties.size > 0) return;
    clearInterval(current.timer);
    clocks.delete(base);
  };
}

function tick(duties: Set<Duty>): void {
  for (const duty of duties) {
    if (--duty.left > 0) continue;
    duty.left = duty.ticks;
    try {
      duty.run();
    } catch (error) {
      // As a timer of its own would: reported, and the other duties still run.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}
