/**
 * A set of strings for the few topics one socket holds (its inbox and a room or two): an array
 * searched linearly up to SMALL entries, a real Set past that. An idle socket's topic sets cost
 * ~80 bytes instead of a Set's hash table each (bench/README.md, idle memory). Iteration is in
 * insertion order, as a Set's.
 */
const SMALL = 8;

export class SmallSet implements Iterable<string> {
  private items: string[] | Set<string> | null = null;

  get size(): number {
    const items = this.items;
    return items === null ? 0 : Array.isArray(items) ? items.length : items.size;
  }

  has(value: string): boolean {
    const items = this.items;
    if (items === null) return false;
    return Array.isArray(items) ? items.includes(value) : items.has(value);
  }

  add(value: string): this {
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
  delete(value: string): boolean {
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

  [Symbol.iterator](): Iterator<string> {
    return (this.items ?? []).values();
  }
}
