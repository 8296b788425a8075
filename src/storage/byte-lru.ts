/**
 * A least-recently-used map bounded by bytes: the one cache shape of the engine and storage (tiles,
 * HAMT shard nodes). Each value is set with its size in bytes (the caller's estimate of what it
 * keeps alive, overhead included); once the total passes `maxBytes`, the least recently used
 * values are dropped until it is back under. A value larger than `maxBytes` is not kept at all.
 */

/** Rough bytes of bookkeeping per cached value (Map entry, key, object headers), added to each size. */
export const ENTRY_OVERHEAD_BYTES = 128

/** A byte-bounded LRU map (see the module comment). Not thread-safe; one per process or owner. */
export class ByteLru<K, V> {
  private readonly map = new Map<K, { value: V; bytes: number }>()
  private total = 0

  /** @param maxBytes the most bytes kept, integer ≥ 0 (0 keeps nothing). @throws RangeError otherwise. */
  constructor(readonly maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`maxBytes must be an integer ≥ 0, got ${maxBytes}`)
  }

  /** Bytes held now (sizes given to {@link set} plus {@link ENTRY_OVERHEAD_BYTES} each), ≤ maxBytes. */
  get bytes(): number {
    return this.total
  }

  /** Values held now. */
  get size(): number {
    return this.map.size
  }

  /** The value under `key`, marking it most recently used; undefined when absent. */
  get(key: K): V | undefined {
    const e = this.map.get(key)
    if (e === undefined) return undefined
    this.map.delete(key)
    this.map.set(key, e)
    return e.value
  }

  /**
   * Stores `value` under `key` (replacing any value there) as the most recently used, then drops the
   * least recently used values until at most maxBytes are held.
   * @param bytes the value's size in bytes, ≥ 0.
   */
  set(key: K, value: V, bytes: number): void {
    this.delete(key)
    const size = bytes + ENTRY_OVERHEAD_BYTES
    if (size > this.maxBytes) return
    this.map.set(key, { value, bytes: size })
    this.total += size
    while (this.total > this.maxBytes) this.delete(this.map.keys().next().value as K)
  }

  /** Drops the value under `key`, if any. */
  delete(key: K): void {
    const e = this.map.get(key)
    if (e === undefined) return
    this.map.delete(key)
    this.total -= e.bytes
  }

  /** Drops everything. */
  clear(): void {
    this.map.clear()
    this.total = 0
  }
}
