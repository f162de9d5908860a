/**
 * A set for the few entries one socket or one user usually has (a socket's inbox and a room or
 * two; a session's or a user's sockets; a user's inbox topic followed by one socket): one entry
 * is kept as itself, a few in an array searched linearly up to SMALL entries, more in a real Set.
 * An idle socket's sets cost ~32–80 bytes instead of a Set's hash table each, and a set of one
 * holds no array at all (bench/README.md, idle memory). Entries must not be arrays, Sets or
 * null. Iteration is in insertion order, as a Set's; unlike a Set's, it must not run while
 * entries are deleted (iterate a copy then).
 */
const SMALL = 8;

type Items<T> = T | T[] | Set<T> | null;

export class SmallSet<T = string> implements Iterable<T> {
  private items: Items<T> = null;

  get size(): number {
    const items = this.items;
    if (items === null) return 0;
    if (Array.isArray(items)) return items.length;
    return items instanceof Set ? items.size : 1;
  }

  has(value: T): boolean {
    const items = this.items;
    if (items === null) return false;
    if (Array.isArray(items)) return items.includes(value);
    return items instanceof Set ? items.has(value) : items === value;
  }

  add(value: T): this {
    const items = this.items;
    if (items === null) this.items = value;
    else if (Array.isArray(items)) {
      if (!items.includes(value)) {
        if (items.length < SMALL) items.push(value);
        else this.items = new Set([...items, value]);
      }
    } else if (items instanceof Set) items.add(value);
    else if (items !== value) this.items = [items, value];
    return this;
  }

  /** True when it was there. */
  delete(value: T): boolean {
    const items = this.items;
    if (items === null) return false;
    if (items instanceof Set) return items.delete(value);
    if (!Array.isArray(items)) {
      if (items !== value) return false;
      this.items = null;
      return true;
    }
    const at = items.indexOf(value);
    if (at < 0) return false;
    items.splice(at, 1);
    if (items.length === 1) this.items = items[0]!;
    return true;
  }

  clear(): void {
    this.items = null;
  }

  [Symbol.iterator](): Iterator<T> {
    const items = this.items;
    if (items === null) return [].values();
    if (Array.isArray(items) || items instanceof Set) return items.values();
    return [items].values();
  }
}
