/**
 * Fair scheduling of the CPU work of RPC requests (decoding, signature and chain checks, receipts)
 * across client addresses. At most `max` requests are being worked on at once in the whole
 * service and at most `perKey` for one address; the rest wait, and a freed slot goes to the next
 * address in round-robin order, not to whoever queued the most. So under overload every address
 * gets an equal share of turns: a flooding address gets its turn like everyone else, and an
 * honest address's next request waits for at most one turn of each other busy address. A request
 * gives its slot back while it only waits (for its batch to be integrated and witnessed), so slow
 * I/O never holds CPU turns.
 *
 * Two bounds keep the waiting (and so the latency under overload) bounded:
 * - an address may keep at most `maxQueued` requests waiting; more are refused at once
 *   ({@link SchedulerFull}, HTTP 429);
 * - all addresses together may keep at most `maxQueuedTotal` requests waiting. At that bound a
 *   newcomer from an address that already has at least as many waiting as any other address is
 *   refused ({@link ServiceBusy}, HTTP 503); otherwise the most recently queued request of the
 *   address with the most waiting is shed (its wait rejects with {@link ServiceBusy}) and the
 *   newcomer queues. So a flood from one address fills the queue but never makes another address's
 *   request be refused: reaching the bound refuses the party that caused it.
 * Optionally (`maxWaitMs`) a request that waited that long for its turn gives up with
 * {@link ServiceBusy} too, so no request waits unboundedly long even below the count bounds.
 * Waits with `always` (answering work that already ran) are never refused, shed nor timed out,
 * and do not count towards `maxQueuedTotal` (see {@link FairScheduler.acquire}).
 *
 * Cost: every acquire, release, dispatch and shed is O(1) amortised in the number of addresses
 * (the heaviest address is kept with count buckets, each count's set of addresses, the maximum
 * moving by one at a time), plus the shift of a key's own waiting array (≤ `maxQueued` + its
 * always-waits). Memory: one small record per address with running or waiting requests.
 */

/** Default most requests being worked on at once per client address. */
export const DEFAULT_CLIENT_CONCURRENCY = 4
/**
 * Default most requests being worked on at once in the whole service: enough to keep the main
 * thread and every request worker busy (a request's check on a worker holds its turn), few enough
 * that a flood waits in the fair queue, in its turn, rather than in the workers' queues.
 */
export const DEFAULT_AUTHORIZE_CONCURRENCY = 8
/** Default most requests one client address may have waiting for a turn. */
export const DEFAULT_CLIENT_QUEUE = 256
/** Default most requests all client addresses together may have waiting for a turn. */
export const DEFAULT_MAX_QUEUED_REQUESTS = 1024

/** The address already has its most requests waiting; nothing was run. Retry later (HTTP 429). */
export class SchedulerFull extends Error {
  override name = 'SchedulerFull'
}

/**
 * The service has `maxQueuedTotal` requests waiting and this one was refused or shed: its address
 * had the most waiting. Nothing was run. Retry later (HTTP 503 with `Retry-After`).
 */
export class ServiceBusy extends Error {
  override name = 'ServiceBusy'
}

/** Options of {@link FairScheduler}: counts of tasks, each an integer ≥ 1. */
export interface FairSchedulerOptions {
  /** Most tasks running at once, all keys together. */
  max: number
  /** Most tasks of one key running at once. */
  perKey: number
  /** Most tasks of one key waiting; past it `run` rejects with {@link SchedulerFull}. */
  maxQueued: number
  /**
   * Most tasks waiting, all keys together (`always` waits not counted); at it the heaviest key's
   * newest wait is shed, or the newcomer refused, with {@link ServiceBusy}. Default unbounded.
   */
  maxQueuedTotal?: number
  /** Longest wait for a turn, ms (`always` waits exempt); past it the wait rejects with {@link ServiceBusy}. Default (or 0): unbounded. */
  maxWaitMs?: number
  /** Timers of `maxWaitMs` (tests inject their own); default the global `setTimeout`/`clearTimeout`. */
  timers?: SchedulerTimers
}

/** The timer functions {@link FairScheduler} uses for `maxWaitMs`. */
export interface SchedulerTimers {
  /** Calls `fn` once after `ms` milliseconds; answers a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown
  /** Cancels a timer `setTimeout` answered (nothing if it already fired). */
  clearTimeout(timer: unknown): void
}

interface Waiter {
  go: () => void
  fail: (err: Error) => void
  always: boolean
  /** Its `maxWaitMs` timer, when one is set. */
  timer?: unknown
}

interface Key {
  name: string
  active: number
  waiting: Waiter[]
  /** Waiting tasks without `always` (those counted against `maxQueuedTotal` and sheddable). */
  queued: number
  /** Whether the key's name is in the ready ring (possibly stale, after a shed emptied its waiting). */
  ready: boolean
}

/** Round-robin scheduler of async tasks keyed by client (see the module comment). */
export class FairScheduler {
  readonly o: FairSchedulerOptions
  readonly #maxQueuedTotal: number
  readonly #maxWaitMs: number
  readonly #timers: SchedulerTimers
  readonly #keys = new Map<string, Key>()
  /** Keys with waiting tasks, each once, in the order they get their next turn. */
  readonly #ready: string[] = []
  #active = 0
  /** Sheddable waiting tasks, all keys together. */
  #queued = 0
  /** `#byQueued[n]`: the keys with exactly `n` ≥ 1 sheddable waiting tasks. */
  readonly #byQueued: Set<Key>[] = [new Set()]
  /** The largest `n` with a non-empty `#byQueued[n]` (0 when nothing sheddable waits). */
  #heaviest = 0

  /** @throws RangeError unless every count is a positive integer. */
  constructor(o: FairSchedulerOptions) {
    for (const [k, v] of Object.entries(o)) {
      if (k === 'timers' || (v === undefined && k === 'maxQueuedTotal')) continue
      if (k === 'maxWaitMs' && (v === undefined || v === 0)) continue
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer`)
    }
    this.o = o
    this.#maxQueuedTotal = o.maxQueuedTotal ?? Infinity
    this.#maxWaitMs = o.maxWaitMs ?? 0
    this.#timers = o.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout) }
  }

  /**
   * Runs `task` when it is `key`'s turn and a slot is free; resolves or rejects as the task does.
   * @throws SchedulerFull (rejects) when `key` already has `maxQueued` tasks waiting; `task` never runs.
   * @throws ServiceBusy (rejects) when refused or shed at `maxQueuedTotal`; `task` never runs.
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
   * (once; later calls do nothing). With `o.always`, the wait is never refused nor shed (for work
   * that must finish, such as answering an append that already ran).
   * @throws SchedulerFull (rejects) when `key` already has `maxQueued` waiting and `o.always` is not set.
   * @throws ServiceBusy (rejects) when `maxQueuedTotal` tasks wait and `key` has at least as many
   *   waiting as any key (at once), or later when this wait is shed for a newcomer of a lighter key
   *   or has lasted `maxWaitMs`.
   */
  async acquire(key: string, o: { always?: boolean } = {}): Promise<() => void> {
    let k = this.#keys.get(key)
    if (k === undefined) this.#keys.set(key, (k = { name: key, active: 0, waiting: [], queued: 0, ready: false }))
    if (this.#active < this.o.max && k.active < this.o.perKey && k.waiting.length === 0) {
      this.#start(k)
    } else {
      const always = o.always === true
      if (!always) {
        if (k.waiting.length >= this.o.maxQueued) {
          this.#forget(k)
          throw new SchedulerFull(`more than ${this.o.maxQueued} requests waiting for this client`)
        }
        if (this.#queued >= this.#maxQueuedTotal) {
          if (k.queued >= this.#heaviest) {
            this.#forget(k)
            throw new ServiceBusy(`${this.#queued} requests waiting in the service, the most from this client`)
          }
          this.#shed()
        }
      }
      await new Promise<void>((go, fail) => {
        const w: Waiter = { go, fail, always }
        k!.waiting.push(w)
        if (!always) {
          this.#count(k!, +1)
          if (this.#maxWaitMs > 0) w.timer = this.#timers.setTimeout(() => this.#expire(k!, w), this.#maxWaitMs)
        }
        if (!k!.ready) {
          k!.ready = true
          this.#ready.push(key)
        }
      })
    }
    let released = false
    return () => {
      if (released) return
      released = true
      this.#active--
      k.active--
      this.#forget(k)
      this.#dispatch()
    }
  }

  #start(k: Key): void {
    this.#active++
    k.active++
  }

  /** Drops `k`'s record when nothing of it runs, waits or is in the ready ring. */
  #forget(k: Key): void {
    if (k.active === 0 && k.waiting.length === 0 && !k.ready) this.#keys.delete(k.name)
  }

  /** Moves `k` by `delta` (±1) sheddable waiting tasks, keeping the totals and count buckets. */
  #count(k: Key, delta: 1 | -1): void {
    if (k.queued > 0) this.#byQueued[k.queued]!.delete(k)
    k.queued += delta
    this.#queued += delta
    if (k.queued > 0) (this.#byQueued[k.queued] ??= new Set()).add(k)
    if (k.queued > this.#heaviest) this.#heaviest = k.queued
    while (this.#heaviest > 0 && this.#byQueued[this.#heaviest]!.size === 0) this.#heaviest--
  }

  /** Rejects the most recently queued sheddable wait of a key with the most of them ({@link ServiceBusy}). */
  #shed(): void {
    const k = this.#byQueued[this.#heaviest]!.values().next().value as Key
    let i = k.waiting.length - 1
    while (k.waiting[i]!.always) i-- // always-waits are never shed; k.queued ≥ 1 so one is found
    const [w] = k.waiting.splice(i, 1)
    this.#count(k, -1)
    if (w!.timer !== undefined) this.#timers.clearTimeout(w!.timer)
    // Its name stays in the ready ring if the key is left with nothing waiting; #dispatch drops it.
    w!.fail(new ServiceBusy(`${this.#queued + 1} requests waiting in the service, the most from this client; shed for another client's request`))
  }

  /** `w` of `k` waited `maxWaitMs`: it leaves the queue and rejects ({@link ServiceBusy}). */
  #expire(k: Key, w: Waiter): void {
    const i = k.waiting.indexOf(w)
    if (i < 0) return // already started or shed
    k.waiting.splice(i, 1)
    this.#count(k, -1)
    // Its name stays in the ready ring if the key is left with nothing waiting; #dispatch drops it.
    w.fail(new ServiceBusy(`waited more than ${this.#maxWaitMs} ms for a turn`))
  }

  /** Hands free slots to waiting keys in round-robin order, skipping keys at their own limit. */
  #dispatch(): void {
    for (let scanned = 0; this.#active < this.o.max && scanned < this.#ready.length; ) {
      const key = this.#ready.shift() as string
      const k = this.#keys.get(key) as Key
      if (k.waiting.length === 0) {
        // Stale: every wait it had was shed.
        k.ready = false
        this.#forget(k)
        continue
      }
      if (k.active >= this.o.perKey) {
        this.#ready.push(key) // its own tasks are running: it gets its turn when one ends
        scanned++
        continue
      }
      scanned = 0
      this.#start(k)
      const w = k.waiting.shift() as Waiter
      if (!w.always) this.#count(k, -1)
      if (w.timer !== undefined) this.#timers.clearTimeout(w.timer)
      if (k.waiting.length > 0) this.#ready.push(key)
      else k.ready = false
      w.go()
    }
  }

  /** Tasks of `key` running now (for tests and metrics). */
  active(key: string): number {
    return this.#keys.get(key)?.active ?? 0
  }

  /** Tasks of `key` waiting for their turn (`always` waits included). */
  waiting(key: string): number {
    return this.#keys.get(key)?.waiting.length ?? 0
  }

  /** Tasks running now, all keys together. */
  running(): number {
    return this.#active
  }

  /** Tasks waiting now that count against `maxQueuedTotal` (all keys, `always` waits excluded). */
  queued(): number {
    return this.#queued
  }

  /** Keys the scheduler holds a record of (running, waiting or in the ready ring; for tests). */
  keys(): number {
    return this.#keys.size
  }
}
