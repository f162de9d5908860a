/**
 * A set for the few entries one socket or one user usually has (a socket's inbox and a room or
 * two; a session's or a user's sockets): an array searched linearly up to SMALL entries, a real
 * Set past that. An idle socket's sets cost ~80 bytes instead of a Set's hash table each
 * (bench/README.md, idle memory). Iteration is in insertion order, as a Set's; unlike a Set's, it
 * must not run while entries are deleted (iterate a copy then).
 */
const SMALL = 8;

export class SmallSet<T = string> implements Iterable<T> {
  private items: T[] | Set<T> | null = null;

  get size(): number {
    const items = this.items;
    return items === null ? 0 : Array.isArray(items) ? items.length : items.size;
  }

  has(value: T): boolean {
    const items = this.items;
    if (items === null) return false;
    return Array.isArray(items) ? items.includes(value) : items.has(value);
  }

  add(value: T): this {
    const items = this.items;
    if (items === null) this.items = [value];
    else if (!Array.isArray(items)) items.add(value);
    else if (!items.includes(value)) {
      if (items.length < SMALL) items.push(value);
      else this.items = new Set([...items, value]);
    }
    return this;
  }

  /** True when it was there. */
  delete(value: T): boolean {
    const items = this.items;
    if (items === null) return false;
    if (!Array.isArray(items)) return items.delete(value);
    const at = items.indexOf(value);
    if (at < 0) return false;
    items.splice(at, 1);
    if (items.length === 0) this.items = null;
    return true;
  }

  clear(): void {
    this.items = null;
  }

  [Symbol.iterator](): Iterator<T> {
    return (this.items ?? []).values();
  }
}
