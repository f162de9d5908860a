/**
 * Per-key sliding-window budgets (SPEC §8: "per-minute budgets are sliding 60 s windows"): at
 * most `limit` events per key in any `windowMs`. Keeps the times of the last `limit` events per
 * key, so memory is bounded by the keys in use times `limit`; a key with no event in the window
 * is forgotten. Pure: time is passed in.
 */
export class SlidingWindow {
  private readonly events = new Map<string, number[]>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
  ) {}

  /** Events of `key` in the window ending at `now`. */
  count(key: string, now: number): number {
    return this.live(key, now)?.length ?? 0;
  }

  /** Records an event when the budget allows it: true, or false with nothing recorded. */
  take(key: string, now: number): boolean {
    const times = this.live(key, now) ?? [];
    if (times.length >= this.limit) return false;
    times.push(now);
    this.events.set(key, times);
    return true;
  }

  /** Records an event whatever the count (one that happened anyway). */
  record(key: string, now: number): void {
    const times = this.live(key, now) ?? [];
    times.push(now);
    if (times.length > this.limit) times.shift();
    this.events.set(key, times);
  }

  /** Whole seconds until `key` may take one more event (at least 1). */
  retryAfterS(key: string, now: number): number {
    const times = this.live(key, now);
    if (times === undefined || times.length < this.limit) return 1;
    const oldest = times[times.length - this.limit]!;
    return Math.max(1, Math.ceil((oldest + this.windowMs - now) / 1000));
  }

  /** Forgets every key whose window is empty (call now and then: keys otherwise go only when read). */
  sweep(now: number): void {
    for (const key of [...this.events.keys()]) this.live(key, now);
  }

  get keys(): number {
    return this.events.size;
  }

  private live(key: string, now: number): number[] | undefined {
    const times = this.events.get(key);
    if (times === undefined) return undefined;
    let drop = 0;
    while (drop < times.length && times[drop]! <= now - this.windowMs) drop++;
    if (drop === times.length) {
      this.events.delete(key);
      return undefined;
    }
    if (drop > 0) times.splice(0, drop);
    return times;
  }
}
