/**
 * Replay protection for `tlog/append` (DESIGN.md: "Replaying the same signed invocation never adds a
 * second entry: it returns the first result"). ucanto has none of its own.
 *
 * An invocation is identified by its CID, which the authorizer has checked is the canonical
 * content address of what it decodes to. Every accepted invocation has an `exp` at most the
 * service's lifetime bound ahead, and after `exp` the invocation is refused as `Expired`, so a
 * guard only has to remember an invocation until its `exp`.
 */

/**
 * Runs each invocation's side effect at most once. Owned by the service; a durable store can
 * implement it to survive restarts.
 */
export interface ReplayGuard {
  /**
   * Runs `task` unless a task for `id` was started and `expiresAt` (Unix seconds, inclusive) has
   * not passed; resolves to the first task's outcome for every call with that `id`, concurrent or
   * later. The outcome is kept whatever it is (a task that failed may have had effects).
   * Safe to call concurrently.
   * @throws {ReplayGuardFull} (rejects) if no more ids can be remembered; nothing is run.
   */
  once<T>(id: string, expiresAt: number, task: () => Promise<T>): Promise<T>
}

/** The guard cannot remember another id without forgetting one that has not expired. */
export class ReplayGuardFull extends Error {
  override name = 'ReplayGuardFull'
}

/** How many ids {@link createMemoryReplayGuard} remembers at most, by default. */
export const DEFAULT_MAX_REPLAY_ENTRIES = 250_000

/** Options of {@link createMemoryReplayGuard}. */
export interface MemoryReplayGuardOptions {
  /** Clock, Unix seconds. Default: the system clock. */
  now?: () => number
  /** Most ids remembered at once; past it `once` rejects. Default {@link DEFAULT_MAX_REPLAY_ENTRIES}. */
  maxEntries?: number
}

/**
 * An in-process {@link ReplayGuard}: a map id → (expiry, outcome promise), swept of expired ids
 * at most once a second and whenever full. Lost on restart.
 */
export function createMemoryReplayGuard(options: MemoryReplayGuardOptions = {}): ReplayGuard {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000))
  const max = options.maxEntries ?? DEFAULT_MAX_REPLAY_ENTRIES
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxEntries must be a positive integer')
  const entries = new Map<string, { expiresAt: number; outcome: Promise<unknown> }>()
  let nextSweep = -Infinity

  const sweep = (t: number): void => {
    for (const [id, entry] of entries) if (entry.expiresAt < t) entries.delete(id)
    nextSweep = t + 1
  }

  return {
    once<T>(id: string, expiresAt: number, task: () => Promise<T>): Promise<T> {
      const t = now()
      if (t >= nextSweep) sweep(t)
      const entry = entries.get(id)
      if (entry !== undefined && entry.expiresAt >= t) return entry.outcome as Promise<T>
      if (entries.size >= max) {
        sweep(t)
        if (entries.size >= max) return Promise.reject(new ReplayGuardFull('replay guard is full'))
      }
      // Registered before the task's first await, so a concurrent duplicate sees it.
      const outcome = (async () => task())()
      entries.set(id, { expiresAt, outcome })
      return outcome
    },
  }
}
