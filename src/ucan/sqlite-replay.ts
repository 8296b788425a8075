/**
 * The replay guard in SQLite (the `seen` table of store.ts's file): seen invocations inserted
 * before their task runs (`synchronous = NORMAL`), outcomes group-committed under
 * `synchronous = FULL` before any is returned.
 */
import type Database from 'better-sqlite3'
import { DEFAULT_REPLAY_PER_SPACE, type ReplayGuard, ReplayGuardFull, type ReplayKey, checkReplayShare } from './replay.js'
import { systemNow } from './clock.js'
import type { UcanStoreOptions } from './store.js'

/** The outcome a `seen` row remembers: its JSON, or {@link UNKNOWN_OUTCOME} while it has none (its run died). */
function outcomeOf<T>(row: { outcome: string | null }): T {
  return (row.outcome === null ? UNKNOWN_OUTCOME : JSON.parse(row.outcome)) as T
}

/** Most expired ids one sweep deletes, so a sweep after a long stop does not block the event loop. */
const MAX_SWEEP = 10_000

/**
 * A durable {@link ReplayGuard}: each id is inserted (outcome pending, with its owner) before its
 * task runs, and its outcome stored as JSON when the task resolves, so a retry — in this process
 * or after a restart — gets the first outcome and never runs the task again. Outcomes settled in
 * the same event-loop turn are committed together in one `synchronous = FULL` transaction, and
 * none is returned before that commit: an answer given survives power loss. Outcomes must be
 * plain JSON data. A task that rejects is forgotten (it is the caller's to turn failures into
 * outcomes). An id whose outcome was not committed when the process died resolves to
 * {@link UNKNOWN_OUTCOME}. In memory it holds only the tasks in flight; rows are swept once their
 * `exp` has passed, and each owner has at most `maxReplayPerOwner` unexpired ids (`once` rejects
 * with `ReplayGuardFull` beyond; others are unaffected).
 */
export class SqliteReplayGuard implements ReplayGuard {
  readonly #db: Database.Database
  readonly #get: Database.Statement<[string], { expires_at: number; outcome: string | null }>
  readonly #insert: Database.Statement<[string, string, number]>
  readonly #settle: Database.Statement<[string, string]>
  readonly #forget: Database.Statement<[string]>
  readonly #sweep: Database.Statement<[number, number]>
  readonly #count: Database.Statement<[string], number>
  readonly #commit: (batch: Settled[]) => void
  readonly #inFlight = new Map<string, Promise<unknown>>()
  readonly #now: () => number
  readonly #max: number
  #batch: Settled[] = []
  #flushScheduled = false
  #nextSweep = -Infinity

  constructor(db: Database.Database, options: UcanStoreOptions = {}) {
    this.#db = db
    this.#now = options.now ?? systemNow
    this.#max = checkReplayShare(options.maxReplayPerOwner ?? DEFAULT_REPLAY_PER_SPACE)
    this.#get = db.prepare('SELECT expires_at, outcome FROM seen WHERE id = ?')
    this.#insert = db.prepare('INSERT INTO seen (id, owner, expires_at, outcome) VALUES (?, ?, ?, NULL)')
    this.#settle = db.prepare('UPDATE seen SET outcome = ? WHERE id = ?')
    this.#forget = db.prepare('DELETE FROM seen WHERE id = ?')
    this.#sweep = db.prepare('DELETE FROM seen WHERE id IN (SELECT id FROM seen WHERE expires_at < ? LIMIT ?)')
    this.#count = db.prepare('SELECT n FROM seen_owners WHERE owner = ?').pluck() as Database.Statement<[string], number>
    const onCommit = options.onReplayCommit
    this.#commit = db.transaction((batch: Settled[]) => {
      for (const b of batch) this.#settle.run(b.json, b.id)
      onCommit?.({ ids: batch.map((b) => b.id), synchronous: db.pragma('synchronous', { simple: true }) as number })
    })
  }

  once<T>({ owner, id, expiresAt }: ReplayKey, task: () => Promise<T>): Promise<T> {
    const flying = this.#inFlight.get(id)
    if (flying !== undefined) return flying as Promise<T>
    try {
      const t = this.#now()
      if (t >= this.#nextSweep) this.#doSweep(t)
      const row = this.#get.get(id)
      if (row !== undefined && row.expires_at >= t) return Promise.resolve(outcomeOf<T>(row))
      if (row !== undefined) this.#forget.run(id) // expired, not yet swept
      if (this.count(owner) >= this.#max) return Promise.reject(new ReplayGuardFull(owner, this.#max))
      this.#insert.run(id, owner, Number.isFinite(expiresAt) ? expiresAt : Number.MAX_SAFE_INTEGER)
    } catch (err) {
      return Promise.reject(err)
    }
    const outcome = (async () => task())().then(
      (value) => this.#durable(id, value),
      (err: unknown) => {
        this.#forget.run(id)
        throw err
      },
    )
    // Registered before the task's first await, so a concurrent duplicate sees it; removed only
    // once the outcome is committed (or failed), so no caller can read an uncommitted row.
    this.#inFlight.set(id, outcome)
    const done = () => this.#inFlight.delete(id)
    outcome.then(done, done)
    return outcome
  }

  seen<T>(id: string): Promise<T> | undefined {
    const flying = this.#inFlight.get(id)
    if (flying !== undefined) return flying as Promise<T>
    const row = this.#get.get(id)
    if (row === undefined || row.expires_at < this.#now()) return undefined
    return Promise.resolve(outcomeOf<T>(row))
  }

  /** Ids of `owner` remembered (unexpired or not yet swept). */
  count(owner: string): number {
    return this.#count.get(owner) ?? 0
  }

  /** Commits the outcomes waiting for the next group commit now (synchronously), resolving their callers. */
  flush(): void {
    this.#flushScheduled = false
    const batch = this.#batch
    if (batch.length === 0) return
    this.#batch = []
    try {
      this.#db.pragma('synchronous = FULL')
      try {
        this.#commit(batch)
      } finally {
        this.#db.pragma('synchronous = NORMAL')
      }
    } catch (err) {
      for (const b of batch) b.reject(err)
      return
    }
    for (const b of batch) b.resolve()
  }

  /** Queues `value` as `id`'s outcome for the next group commit; resolves to it once committed. */
  #durable<T>(id: string, value: T): Promise<T> {
    const json = JSON.stringify(value)
    return new Promise<T>((resolve, reject) => {
      this.#batch.push({ id, json, resolve: () => resolve(value), reject })
      if (!this.#flushScheduled) {
        this.#flushScheduled = true
        setImmediate(() => this.flush())
      }
    })
  }

  #doSweep(t: number): void {
    const swept = this.#sweep.run(t, MAX_SWEEP).changes
    // More expired rows than one sweep takes: sweep again at the next call.
    this.#nextSweep = swept < MAX_SWEEP ? t + 1 : t
  }
}

/** An outcome waiting for its group commit. */
interface Settled {
  id: string
  json: string
  resolve(): void
  reject(err: unknown): void
}

/**
 * What {@link SqliteReplayGuard} returns for an invocation whose first run had started but not
 * finished when the process stopped: the entry may or may not have been appended, so the retry
 * is not run again.
 */
export const UNKNOWN_OUTCOME = {
  error: { name: 'InternalError', message: 'the first attempt of this invocation did not finish; its outcome is unknown' },
} as const
