/**
 * A least-recently-used cache of promised values by key: the compiled-grammar cache of GrammarEngine (in
 * process) and GrammarPool (on worker threads). A lookup moves its entry to the newest end; a promise that
 * rejects leaves the cache (only if it is still the entry for its key), so the next request tries again; an
 * entry pushed out by `capacity` is handed to `evict` once it has settled to a value.
 */
export class PromiseLru<V> {
  private readonly map = new Map<string, Promise<V>>();

  constructor(
    private readonly capacity: number,
    private readonly evict: (value: V) => void,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`PromiseLru capacity must be a positive integer, got ${capacity}`);
  }

  /** The cached promise for `key`, or `create()`'s, cached (evicting the oldest entries beyond capacity). */
  getOrCreate(key: string, create: () => Promise<V>): Promise<V> {
    const hit = this.map.get(key);
    if (hit !== undefined) {
      this.map.delete(key); // LRU: move to the end
      this.map.set(key, hit);
      return hit;
    }
    const created = create();
    this.map.set(key, created);
    created.catch(() => {
      if (this.map.get(key) === created) this.map.delete(key);
    });
    while (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as string;
      this.map.get(oldest)?.then(this.evict, () => undefined);
      this.map.delete(oldest);
    }
    return created;
  }

  get(key: string): Promise<V> | undefined {
    return this.map.get(key);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  /** Forgets every entry without evicting (the owner is tearing down what they live in). */
  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }

  /** Oldest first. */
  entries(): IterableIterator<[string, Promise<V>]> {
    return this.map.entries();
  }
}
