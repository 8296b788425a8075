/**
 * Replay protection for `tlog/append` (docs/wire.md): replaying the same signed invocation never
 * adds a second entry, it returns the first result. ucanto has none of its own.
 *
 * An invocation is identified by its CID, which the authorizer has checked is the canonical
 * content address of what it decodes to. Every accepted invocation has an `exp` at most the
 * service's lifetime bound ahead, and after `exp` the invocation is refused as `Expired`, so a
 * guard only has to remember an invocation until its `exp`.
 */
import { setImmediate } from 'node:timers'
import { forgettingClockOf } from './clock.js'

/** What {@link ReplayGuard.once} remembers an invocation by. */
export interface ReplayKey {
  /** Whose share the id takes: the space (log) the invocation writes to, its `with`. */
  owner: string
  /** The invocation's CID. */
  id: string
  /** Unix seconds, inclusive: until when the id is remembered (the invocation's `exp`). */
  expiresAt: number
}

/**
 * Runs each invocation's side effect at most once. Owned by the service; a durable store can
 * implement it to survive restarts.
 *
 * Capacity is per owner (space): each owner may have at most a fixed number of unexpired ids
 * remembered. One owner at its share is refused; every other owner is unaffected. Since every id
 * expires at its invocation's `exp` (at most the service's lifetime bound ahead), the total across
 * owners is at most (admitted appends per second) × (lifetime bound).
 */
export interface ReplayGuard {
  /**
   * Runs `task` unless a task for `key.id` was started and `key.expiresAt` (Unix seconds,
   * inclusive) has not passed; resolves to the first task's outcome for every call with that id,
   * concurrent or later. The outcome is kept whatever it is (a task that failed may have had
   * effects). A remembered id is answered even when its owner's share is full. Safe to call
   * concurrently.
   * @throws {ReplayGuardFull} (rejects) if `key.owner` already has its share of unexpired ids;
   *   nothing is run.
   */
  once<T>(key: ReplayKey, task: () => Promise<T>): Promise<T>
  /**
   * The outcome remembered for `id` (settled, or the promise of one in flight) while its
   * `expiresAt` has not passed; undefined otherwise — or, for a guard that must ask a database,
   * a promise of either (undefined also while another instance's run is pending: {@link once}
   * waits for that). Starts nothing, charges no share.
   */
  seen<T>(id: string): Promise<T | undefined> | undefined
}

/** An owner (space) already has its share of unexpired invocations remembered; nothing was run. */
export class ReplayGuardFull extends Error {
  override name = 'ReplayGuardFull'
  /**
   * @param owner the owner at its share.
   * @param limit its share, in ids.
   */
  constructor(
    readonly owner: string,
    readonly limit: number,
  ) {
    super(`${owner} has ${limit} unexpired invocations remembered, its share of the replay guard`)
  }
}

/**
 * The same invocation is being run by another instance of the service (a guard shared through a
 * database), and had no outcome within the guard's wait bound. Nothing was run here; sending the
 * same invocation again later gets its first outcome.
 */
export class ReplayPending extends Error {
  override name = 'ReplayPending'
  /**
   * @param id the invocation's id (CID).
   * @param waitedMs how long the guard waited, in milliseconds.
   */
  constructor(
    readonly id: string,
    readonly waitedMs: number,
  ) {
    super(`invocation ${id} is being run by another instance; no outcome after ${waitedMs} ms`)
  }
}

/**
 * Default share of one space: ids remembered at once, unexpired. Sized so that an honest space at
 * its rate limit (src/server/rate-limit.ts: 200 invocations/s sustained, 2,000 burst) whose every
 * invocation has the longest accepted lifetime (3,600 s) fits: 200 × 3,600 + 2,000.
 */
export const DEFAULT_REPLAY_PER_SPACE = 200 * 3600 + 2000

/** Checks a per-owner share. @throws RangeError unless a positive safe integer. */
export function checkReplayShare(max: number): number {
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('the replay share per owner must be a positive integer')
  return max
}

/** Options of {@link createMemoryReplayGuard}. */
export interface MemoryReplayGuardOptions {
  /** Clock, Unix seconds. Default: the system clock, guarded by {@link forgettingClock}. */
  now?: () => number
  /** Monotonic seconds: with `now`, guards it like the system clock (see {@link forgettingClockOf}). */
  monotonic?: () => number
  /** Most unexpired ids remembered per owner; past it `once` rejects. Default {@link DEFAULT_REPLAY_PER_SPACE}. */
  maxPerOwner?: number
}

/**
 * An in-process {@link ReplayGuard}: a map id → (owner, expiry, outcome promise) plus a count per
 * owner, swept of expired ids at most once a second. Lost on restart.
 */
export function createMemoryReplayGuard(options: MemoryReplayGuardOptions = {}): ReplayGuard {
  const now = forgettingClockOf(options) // every reading here decides what is forgotten
  const max = checkReplayShare(options.maxPerOwner ?? DEFAULT_REPLAY_PER_SPACE)
  const entries = new Map<string, { owner: string; expiresAt: number; outcome: Promise<unknown> }>()
  const counts = new Map<string, number>()
  let nextSweep = -Infinity

  const forget = (id: string, owner: string): void => {
    entries.delete(id)
    const n = (counts.get(owner) ?? 1) - 1
    if (n > 0) counts.set(owner, n)
    else counts.delete(owner)
  }
  const sweep = (t: number): void => {
    for (const [id, entry] of entries) if (entry.expiresAt < t) forget(id, entry.owner)
    nextSweep = t + 1
  }

  return {
    once<T>({ owner, id, expiresAt }: ReplayKey, task: () => Promise<T>): Promise<T> {
      const t = now()
      if (t >= nextSweep) sweep(t)
      const entry = entries.get(id)
      if (entry !== undefined && entry.expiresAt >= t) return entry.outcome as Promise<T>
      if (entry !== undefined) forget(id, entry.owner)
      if ((counts.get(owner) ?? 0) >= max) return Promise.reject(new ReplayGuardFull(owner, max))
      // Registered before the task's first await, so a concurrent duplicate sees it.
      const outcome = (async () => task())()
      entries.set(id, { owner, expiresAt, outcome })
      counts.set(owner, (counts.get(owner) ?? 0) + 1)
      return outcome
    },
    seen<T>(id: string): Promise<T> | undefined {
      const entry = entries.get(id)
      return entry !== undefined && entry.expiresAt >= now() ? (entry.outcome as Promise<T>) : undefined
    },
  }
}

/** A {@link ReplayGuard.once} call of a batched guard, waiting for its batch to be admitted. */
export interface PendingAdmit {
  key: ReplayKey
  task: () => Promise<unknown>
  resolve(value: unknown): void
  reject(err: unknown): void
}

/**
 * The calls of one event-loop turn, admitted together in one transaction by the durable guards
 * (SQLite, PostgreSQL). {@link join} gives a call for an id already in flight that call's promise;
 * otherwise it queues the call and schedules `admit` at the next check phase (setImmediate), so the
 * invocations of one request are admitted together. An outcome stays in flight until it settles
 * (the guard settles it once durable), so a concurrent duplicate shares it.
 */
export class AdmitQueue {
  /** Outcomes of the ids being run (or admitted) in this process, by id. */
  readonly inFlight = new Map<string, Promise<unknown>>()
  #pending: PendingAdmit[] = []
  #scheduled = false

  /** @param admit takes the batch ({@link take}) and admits it. */
  constructor(private readonly admit: () => void) {}

  /** Calls queued and not yet taken. */
  get size(): number {
    return this.#pending.length
  }

  /** The outcome of `key.id`: the one in flight, or a new call of `task` queued for admission. */
  join<T>(key: ReplayKey, task: () => Promise<T>): Promise<T> {
    const flying = this.inFlight.get(key.id)
    if (flying !== undefined) return flying as Promise<T>
    let resolve!: (value: T) => void
    let reject!: (err: unknown) => void
    const outcome = new Promise<T>((res, rej) => {
      resolve = res
      reject = rej
    })
    this.push({ key, task, resolve: resolve as (value: unknown) => void, reject })
    this.inFlight.set(key.id, outcome)
    const done = () => this.inFlight.delete(key.id)
    outcome.then(done, done)
    return outcome
  }

  /** Queues a call (again, e.g. after the claim it waited for went away) and schedules the batch. */
  push(call: PendingAdmit): void {
    this.#pending.push(call)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.admit)
    }
  }

  /** Takes every queued call: the batch to admit now. */
  take(): PendingAdmit[] {
    this.#scheduled = false
    const batch = this.#pending
    this.#pending = []
    return batch
  }
}
