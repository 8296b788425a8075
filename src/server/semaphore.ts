/**
 * A counting semaphore per key: at most `max` tasks of one key run at once, the rest wait in
 * arrival order. Used to bound the authorizations (signature and chain checks, the CPU-heavy part
 * of a request) one client address has in progress, so one address cannot monopolize the CPU.
 */

/** Default most authorizations in progress at once per client address. */
export const DEFAULT_CLIENT_CONCURRENCY = 4

/** At most `max` concurrent tasks per key; others queue (FIFO) until a slot of that key frees. */
export class KeyedSemaphore {
  readonly max: number
  readonly #keys = new Map<string, { active: number; waiting: (() => void)[] }>()

  /** @param max integer ≥ 1: most tasks of one key running at once. @throws RangeError otherwise. */
  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('max must be a positive integer')
    this.max = max
  }

  /** Runs `task` once `key` has a free slot; resolves or rejects as the task does. */
  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    let k = this.#keys.get(key)
    if (k === undefined) this.#keys.set(key, (k = { active: 0, waiting: [] }))
    if (k.active >= this.max) await new Promise<void>((go) => k!.waiting.push(go))
    else k.active++
    try {
      return await task()
    } finally {
      // Hand the slot to the next waiter (active stays the same), or free it.
      const next = k.waiting.shift()
      if (next !== undefined) next()
      else if (--k.active === 0) this.#keys.delete(key)
    }
  }

  /** Tasks of `key` running now (for tests and metrics). */
  active(key: string): number {
    return this.#keys.get(key)?.active ?? 0
  }

  /** Tasks of `key` waiting for a slot. */
  waiting(key: string): number {
    return this.#keys.get(key)?.waiting.length ?? 0
  }
}
