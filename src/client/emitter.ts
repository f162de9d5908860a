/**
 * A tiny typed event emitter (no dependency on Node's `events` or the DOM's EventTarget, so the
 * same code runs in browsers and Bun). A listener that throws does not stop the others or the
 * client: the exception is reported with console.error.
 */
export type Listener<T> = (payload: T) => void;

export class Emitter<Events extends object> {
  #listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    this.#listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** Resolves with the next payload of `event`. */
  once<K extends keyof Events>(event: K): Promise<Events[K]> {
    return new Promise((resolve) => {
      const off = this.on(event, (payload) => {
        off();
        resolve(payload);
      });
    });
  }

  /** How many listeners `event` has. */
  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  protected emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) safeCall(listener as Listener<Events[K]>, payload);
  }
}

/** Calls an application callback; its exception is logged, never thrown into the client. */
export function safeCall<T>(fn: ((payload: T) => void) | undefined, payload: T): void {
  if (!fn) return;
  try {
    fn(payload);
  } catch (error) {
    console.error("switchboard client: a listener threw", error);
  }
}
