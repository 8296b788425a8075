/**
 * Fair scheduling of authorizations (signature and chain checks, the CPU-heavy part of a request)
 * across client addresses. At most `max` run at once in the whole service and at most `perKey` for
 * one address; the rest wait, and a freed slot goes to the next address in round-robin order, not
 * to whoever queued the most. So a flooding address gets its turn like everyone else, and an
 * honest address's next authorization waits for at most one task of each other busy address.
 * An address may keep at most `maxQueued` waiting; more are refused at once ({@link SchedulerFull}).
 */

/** Default most authorizations in progress at once per client address. */
export const DEFAULT_CLIENT_CONCURRENCY = 2
/** Default most authorizations in progress at once in the whole service (CPU-bound work: a few per core). */
export const DEFAULT_AUTHORIZE_CONCURRENCY = 4
/** Default most authorizations one client address may have waiting. */
export const DEFAULT_CLIENT_QUEUE = 256

/** The address already has its most authorizations waiting; nothing was run. Retry later (HTTP 429 / `RateLimited`). */
export class SchedulerFull extends Error {
  override name = 'SchedulerFull'
}

/** Options of {@link FairScheduler}: counts of tasks, each an integer ≥ 1. */
export interface FairSchedulerOptions {
  /** Most tasks running at once, all keys together. */
  max: number
  /** Most tasks of one key running at once. */
  perKey: number
  /** Most tasks of one key waiting; past it `run` rejects with {@link SchedulerFull}. */
  maxQueued: number
}

interface Key {
  active: number
  waiting: (() => void)[]
}

/** Round-robin scheduler of async tasks keyed by client (see the module comment). */
export class FairScheduler {
  readonly o: FairSchedulerOptions
  readonly #keys = new Map<string, Key>()
  /** Keys with waiting tasks, each once, in the order they get their next turn. */
  readonly #ready: string[] = []
  #active = 0

  /** @throws RangeError unless every count is a positive integer. */
  constructor(o: FairSchedulerOptions) {
    for (const [k, v] of Object.entries(o)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer`)
    }
    this.o = o
  }

  /**
   * Runs `task` when it is `key`'s turn and a slot is free; resolves or rejects as the task does.
   * @throws SchedulerFull (rejects) when `key` already has `maxQueued` tasks waiting; `task` never runs.
   */
  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    let k = this.#keys.get(key)
    if (k === undefined) this.#keys.set(key, (k = { active: 0, waiting: [] }))
    if (this.#active < this.o.max && k.active < this.o.perKey && k.waiting.length === 0) {
      this.#start(k)
    } else {
      if (k.waiting.length >= this.o.maxQueued) throw new SchedulerFull(`more than ${this.o.maxQueued} authorizations waiting for this client`)
      await new Promise<void>((go) => {
        k!.waiting.push(go)
        if (k!.waiting.length === 1) this.#ready.push(key)
      })
    }
    try {
      return await task()
    } finally {
      this.#active--
      k.active--
      if (k.active === 0 && k.waiting.length === 0) this.#keys.delete(key)
      this.#dispatch()
    }
  }

  #start(k: Key): void {
    this.#active++
    k.active++
  }

  /** Hands free slots to waiting keys in round-robin order, skipping keys at their own limit. */
  #dispatch(): void {
    for (let scanned = 0; this.#active < this.o.max && scanned < this.#ready.length; ) {
      const key = this.#ready.shift() as string
      const k = this.#keys.get(key) as Key
      if (k.active >= this.o.perKey) {
        this.#ready.push(key) // its own tasks are running: it gets its turn when one ends
        scanned++
        continue
      }
      scanned = 0
      this.#start(k)
      ;(k.waiting.shift() as () => void)()
      if (k.waiting.length > 0) this.#ready.push(key)
    }
  }

  /** Tasks of `key` running now (for tests and metrics). */
  active(key: string): number {
    return this.#keys.get(key)?.active ?? 0
  }

  /** Tasks of `key` waiting for their turn. */
  waiting(key: string): number {
    return this.#keys.get(key)?.waiting.length ?? 0
  }

  /** Tasks running now, all keys together. */
  running(): number {
    return this.#active
  }
}
