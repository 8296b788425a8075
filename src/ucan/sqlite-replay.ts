/**
 * The replay guard in SQLite (the `seen` table of store.ts's file): seen invocations admitted in
 * batches (all calls made before the event loop's next check phase: a request's invocations),
 * each batch one `synchronous = NORMAL` transaction inserting its new ids before their tasks run;
 * outcomes group-committed under `synchronous = FULL` before any is returned.
 */
import { setImmediate } from 'node:timers'
import type Database from 'better-sqlite3'
import { AdmitQueue, DEFAULT_REPLAY_PER_SPACE, type PendingAdmit, type ReplayGuard, ReplayGuardFull, type ReplayKey, checkReplayShare } from './replay.js'
import { forgettingClockOf } from './clock.js'
import type { UcanStoreOptions } from './store.js'

/** The outcome a `seen` row remembers: its JSON, or {@link UNKNOWN_OUTCOME} while it has none (its run died). */
function outcomeOf<T>(row: { outcome: string | null }): T {
  return (row.outcome === null ? UNKNOWN_OUTCOME : JSON.parse(row.outcome)) as T
}

/** Most expired ids one sweep deletes, so a sweep after a long stop does not block the event loop. */
const MAX_SWEEP = 10_000

/**
 * Default most outcomes kept in memory after their group commit failed (issue 15 item 2), waiting
 * to be committed again: about 1–2 KB each, so at most ~20 MB. Past it the oldest is dropped (its
 * retry then gets {@link UNKNOWN_OUTCOME}: never a second run).
 */
export const DEFAULT_REPLAY_UNCOMMITTED = 10_000

/**
 * A durable {@link ReplayGuard}: each id is inserted (outcome pending, with its owner) before its
 * task runs — the calls made before the event loop's next check phase together, in one
 * transaction ({@link SqliteReplayGuard.admitPending}) — and its outcome stored as JSON when the task resolves, so a retry — in this process
 * or after a restart — gets the first outcome and never runs the task again. Outcomes settled in
 * the same event-loop turn are committed together in one `synchronous = FULL` transaction, and
 * none is returned before that commit: an answer given survives power loss. Outcomes must be
 * plain JSON data. A task that rejects is forgotten (it is the caller's to turn failures into
 * outcomes). An id whose outcome was not committed when the process died resolves to
 * {@link UNKNOWN_OUTCOME}. In memory it holds only the tasks in flight; rows are swept once their
 * `exp` has passed, and each owner has at most `maxReplayPerOwner` unexpired ids (`once` rejects
 * with `ReplayGuardFull` beyond; others are unaffected).
 *
 * A group commit that fails (SQLITE_FULL, SQLITE_IOERR, …: issue 15 item 2) rejects its callers
 * (no answer given), and keeps their outcomes in memory (at most `maxUncommittedOutcomes`, oldest
 * dropped first): the next group commit writes them again, and a retry of one of those ids (`once`
 * or `seen`) is answered with its first outcome once that outcome is committed, refused with the
 * commit's error while committing still fails. The task never runs twice, and a retry is not
 * answered UNKNOWN_OUTCOME just because the disk was full for a while; only a restart before the
 * outcome could be committed (or one dropped past the bound) leaves it unknown.
 */
export class SqliteReplayGuard implements ReplayGuard {
  readonly #db: Database.Database
  readonly #get: Database.Statement<[string], { expires_at: number; outcome: string | null }>
  readonly #insert: Database.Statement<[string, string, number]>
  /** Decides each call of a batch (and inserts the new ids) in one transaction. */
  readonly #admitTx: (batch: readonly Admit[]) => Decision[]
  readonly #admits = new AdmitQueue(() => this.admitPending())
  readonly #settle: Database.Statement<[string, string]>
  readonly #forget: Database.Statement<[string]>
  readonly #sweep: Database.Statement<[number, number]>
  readonly #count: Database.Statement<[string], number>
  readonly #commit: (batch: Settled[]) => void
  readonly #now: () => number
  readonly #max: number
  #batch: Settled[] = []
  #flushScheduled = false
  #nextSweep = -Infinity
  /** Outcomes (id → JSON) whose group commit failed, oldest first, committed again with the next one. */
  readonly #uncommitted = new Map<string, string>()
  readonly #maxUncommitted: number

  constructor(db: Database.Database, options: UcanStoreOptions = {}) {
    this.#db = db
    this.#now = forgettingClockOf(options) // every reading here decides what is forgotten
    this.#max = checkReplayShare(options.maxReplayPerOwner ?? DEFAULT_REPLAY_PER_SPACE)
    this.#maxUncommitted = options.maxUncommittedOutcomes ?? DEFAULT_REPLAY_UNCOMMITTED
    if (!Number.isSafeInteger(this.#maxUncommitted) || this.#maxUncommitted < 0) throw new RangeError('maxUncommittedOutcomes must be an integer ≥ 0')
    this.#get = db.prepare('SELECT expires_at, outcome FROM seen WHERE id = ?')
    this.#settle = db.prepare('UPDATE seen SET outcome = ? WHERE id = ?')
    this.#forget = db.prepare('DELETE FROM seen WHERE id = ?')
    this.#sweep = db.prepare('DELETE FROM seen WHERE id IN (SELECT id FROM seen WHERE expires_at < ? LIMIT ?)')
    this.#count = db.prepare('SELECT n FROM seen_owners WHERE owner = ?').pluck() as Database.Statement<[string], number>
    this.#insert = db.prepare('INSERT INTO seen (id, owner, expires_at, outcome) VALUES (?, ?, ?, NULL)')
    // One prepared statement per id and per owner, inside the batch's transaction: a keyed lookup
    // or insert each (cheaper in SQLite than one statement over a JSON array: json_each and
    // json_extract cost more per id than the statement step they save).
    this.#admitTx = db.transaction((batch: readonly Admit[]): Decision[] => {
      const t = this.#now()
      if (t >= this.#nextSweep) this.#doSweep(t)
      const rows: ({ expires_at: number; outcome: string | null } | undefined)[] = []
      for (const b of batch) {
        const row = this.#get.get(b.key.id)
        // Expired ids not yet swept are forgotten first (each frees its owner's place).
        if (row !== undefined && row.expires_at < t) {
          this.#forget.run(b.key.id)
          this.#uncommitted.delete(b.key.id)
          rows.push(undefined)
        } else {
          rows.push(row)
        }
      }
      // Each owner's count, read once (after the forgets above), then kept here as ids are admitted.
      const counts = new Map<string, number>()
      const decided = batch.map((b, i): Decision => {
        const row = rows[i]
        const uncommitted = row?.outcome === null ? this.#uncommitted.get(b.key.id) : undefined
        if (uncommitted !== undefined) return { recommit: uncommitted }
        if (row !== undefined) return { answer: outcomeOf(row) }
        const n = counts.get(b.key.owner) ?? this.#count.get(b.key.owner) ?? 0
        if (n >= this.#max) return { full: true }
        counts.set(b.key.owner, n + 1)
        return 'run'
      })
      batch.forEach((b, i) => {
        if (decided[i] === 'run') this.#insert.run(b.key.id, b.key.owner, Number.isFinite(b.key.expiresAt) ? b.key.expiresAt : Number.MAX_SAFE_INTEGER)
      })
      return decided
    })
    const onCommit = options.onReplayCommit
    this.#commit = db.transaction((batch: Settled[]) => {
      for (const b of batch) this.#settle.run(b.json, b.id)
      onCommit?.({ ids: batch.map((b) => b.id), synchronous: db.pragma('synchronous', { simple: true }) as number })
    })
  }

  once<T>(key: ReplayKey, task: () => Promise<T>): Promise<T> {
    // In flight until the outcome is committed (or failed), so no caller can read an uncommitted row.
    return this.#admits.join(key, task)
  }

  /**
   * Admits every pending {@link once} now (synchronously), in one `synchronous = NORMAL`
   * transaction over the whole batch (a keyed lookup per id, one count per owner, an insert per
   * new id): the ids already seen (answered with their outcome, nothing run), each owner's count
   * (past its share: `ReplayGuardFull`, nothing run), the new ids inserted; then starts the new
   * ids' tasks. Runs by itself at the
   * event loop's next check phase, so the invocations of one request are admitted together.
   */
  admitPending(): void {
    const batch = this.#admits.take()
    if (batch.length === 0) return
    let decided: Decision[]
    try {
      decided = this.#admitTx(batch)
    } catch (err) {
      for (const b of batch) b.reject(err)
      return
    }
    batch.forEach((b, i) => {
      const d = decided[i]
      if (d === 'run') {
        const id = b.key.id
        ;(async () => b.task())()
          .then(
            (value) => this.#durable(id, value),
            (err: unknown) => {
              this.#forget.run(id)
              throw err
            },
          )
          .then(b.resolve, b.reject)
      } else if (d !== undefined && 'answer' in d) {
        b.resolve(d.answer)
      } else if (d !== undefined && 'recommit' in d) {
        this.#durable(b.key.id, JSON.parse(d.recommit) as unknown).then(b.resolve, b.reject)
      } else {
        b.reject(new ReplayGuardFull(b.key.owner, this.#max))
      }
    })
  }

  seen<T>(id: string): Promise<T> | undefined {
    const flying = this.#admits.inFlight.get(id)
    if (flying !== undefined) return flying as Promise<T>
    const row = this.#get.get(id)
    if (row === undefined || row.expires_at < this.#now()) return undefined
    const uncommitted = row.outcome === null ? this.#uncommitted.get(id) : undefined
    if (uncommitted !== undefined) return this.#durable(id, JSON.parse(uncommitted) as T)
    return Promise.resolve(outcomeOf<T>(row))
  }

  /** Outcomes whose group commit failed, kept in memory until a later one commits them (≤ `maxUncommittedOutcomes`). */
  get uncommitted(): number {
    return this.#uncommitted.size
  }

  /** Ids of `owner` remembered (unexpired or not yet swept). */
  count(owner: string): number {
    return this.#count.get(owner) ?? 0
  }

  /**
   * Commits the outcomes waiting for the next group commit now (synchronously), with those whose
   * earlier commit failed, resolving their callers. If it fails, the callers are rejected with the
   * error and the outcomes kept for the next commit (see the class comment).
   */
  flush(): void {
    this.#flushScheduled = false
    const batch = this.#batch
    if (batch.length === 0) return
    this.#batch = []
    const ids = new Set(batch.map((b) => b.id))
    const again: Settled[] = [...this.#uncommitted].filter(([id]) => !ids.has(id)).map(([id, json]) => ({ id, json, resolve: () => {}, reject: () => {} }))
    try {
      // Through pragma() each time, not a statement prepared once: SQLite applies a `synchronous`
      // setting when the PRAGMA is prepared, not when a prepared one is run again.
      this.#db.pragma('synchronous = FULL')
      try {
        this.#commit([...batch, ...again])
      } finally {
        this.#db.pragma('synchronous = NORMAL')
      }
    } catch (err) {
      // Never answered, never forgotten: kept for the next commit (the oldest dropped past the bound).
      for (const b of batch) {
        this.#uncommitted.delete(b.id)
        this.#uncommitted.set(b.id, b.json)
      }
      for (const id of this.#uncommitted.keys()) {
        if (this.#uncommitted.size <= this.#maxUncommitted) break
        this.#uncommitted.delete(id)
      }
      for (const b of batch) b.reject(err)
      return
    }
    for (const b of [...batch, ...again]) this.#uncommitted.delete(b.id)
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

/** A {@link SqliteReplayGuard.once} call waiting to be admitted. */
type Admit = PendingAdmit

/** What the admission decides for one call: run its task, answer a remembered outcome, commit a kept one again, or refuse (share full). */
type Decision = 'run' | { answer: unknown } | { recommit: string } | { full: true }

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
