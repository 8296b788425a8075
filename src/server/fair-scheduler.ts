/**
 * Fair scheduling of the CPU work of RPC requests (decoding, signature and chain checks, receipts)
 * across client addresses. At most `max` requests are being worked on at once in the whole
 * service and at most `perKey` for one address; the rest wait, and a freed slot goes to the next
 * address in round-robin order, not to whoever queued the most. So under overload every address
 * gets an equal share of turns: a flooding address gets its turn like everyone else, and an
 * honest address's next request waits for at most one turn of each other busy address. A request
 * gives its slot back while it only waits (for its batch to be integrated and witnessed), so slow
 * I/O never holds CPU turns. An address may keep at most `maxQueued` requests waiting; more are
 * refused at once ({@link SchedulerFull}).
 */

/** Default most requests being worked on at once per client address. */
export const DEFAULT_CLIENT_CONCURRENCY = 4
/** Default most requests being worked on at once in the whole service (CPU-bound work on one thread: a few). */
export const DEFAULT_AUTHORIZE_CONCURRENCY = 8
/** Default most requests one client address may have waiting for a turn. */
export const DEFAULT_CLIENT_QUEUE = 256

/** The address already has its most requests waiting; nothing was run. Retry later (HTTP 429). */
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
    const release = await this.acquire(key)
    try {
      return await task()
    } finally {
      release()
    }
  }

  /**
   * Waits for `key`'s turn and a free slot, and holds it until the returned function is called
   * (once; later calls do nothing). With `o.always`, the wait is never refused (for work that must
   * finish, such as answering an append that already ran).
   * @throws SchedulerFull (rejects) when `key` already has `maxQueued` waiting and `o.always` is not set.
   */
  async acquire(key: string, o: { always?: boolean } = {}): Promise<() => void> {
    let k = this.#keys.get(key)
    if (k === undefined) this.#keys.set(key, (k = { active: 0, waiting: [] }))
    if (this.#active < this.o.max && k.active < this.o.perKey && k.waiting.length === 0) {
      this.#start(k)
    } else {
      if (!o.always && k.waiting.length >= this.o.maxQueued) {
        if (k.active === 0 && k.waiting.length === 0) this.#keys.delete(key)
        throw new SchedulerFull(`more than ${this.o.maxQueued} requests waiting for this client`)
      }
      await new Promise<void>((go) => {
        k!.waiting.push(go)
        if (k!.waiting.length === 1) this.#ready.push(key)
      })
    }
    let released = false
    return () => {
      if (released) return
      released = true
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
