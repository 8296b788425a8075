/**
 * The UCAN layer's durable state in one SQLite file (better-sqlite3; default `<data>/ucan.db`):
 * revocations (`ucan/revoke`) and the replay guard's seen invocations, each through its own
 * connection, WAL journal. Revocations use `synchronous = FULL`: durable (survives kill -9 and
 * power loss) once the call that made them returns. Seen invocations are written when their task
 * starts without an fsync (`synchronous = NORMAL`: they survive a process crash), and their
 * outcomes are group-committed under `synchronous = FULL`, one transaction (one fsync) per batch
 * of outcomes settled in the same event-loop turn, before any of them is returned: an answer given
 * survives power loss, and the event loop pays one fsync per batch, not two per append. One
 * process owns the file.
 *
 * Revocations here are the index the authorizer queries on every append; the revocation
 * transparency log (src/server/revocations.ts) is the public, signed copy. Each row remembers its
 * log index once appended, so the two are kept in step: rows without an index are appended again
 * after a crash, and a lost index is rebuilt from the log.
 */
import Database from 'better-sqlite3'
import type { API } from '@ucanto/core'
import { systemNow } from './clock.js'
import { DEFAULT_REPLAY_PER_SPACE, type ReplayGuard, ReplayGuardFull, type ReplayKey, checkReplayShare } from './replay.js'
import {
  DEFAULT_REVOCATIONS_PER_SCOPE,
  type RevocationQuery,
  type RevocationRecord,
  type RevocationRecorder,
  RevocationScopeFull,
} from './revocation.js'

/** Options of {@link UcanStore.open}. */
export interface UcanStoreOptions {
  /** Clock, Unix seconds; default the system clock. */
  now?: () => number
  /** Most revocation records per principal (scope); default {@link DEFAULT_REVOCATIONS_PER_SCOPE}. */
  maxRevocationsPerScope?: number
  /** Most unexpired invocations the replay guard remembers per owner (space); default {@link DEFAULT_REPLAY_PER_SPACE}. */
  maxReplayPerOwner?: number
  /**
   * Called inside each group commit of replay outcomes, just before it commits, with the ids it
   * makes durable and the `synchronous` level in effect (2 = FULL). Throwing rolls the batch back
   * (its callers' promises reject). For tests and metrics; default none.
   */
  onReplayCommit?: (commit: { ids: readonly string[]; synchronous: number }) => void
}

interface RevocationRow {
  ucan: string
  scope: string
  revoker: string
  invocation: string
  time: number
  log_index: number | null
}

/** The SQLite file holding revocations and seen invocations. */
export class UcanStore {
  readonly #db: Database.Database
  readonly #replayDb: Database.Database
  /** Revocations: the authorizer's {@link RevocationRecorder}. */
  readonly revocations: SqliteRevocations
  /** Seen invocations: a durable {@link ReplayGuard}. */
  readonly replay: SqliteReplayGuard

  private constructor(db: Database.Database, replayDb: Database.Database, options: UcanStoreOptions) {
    this.#db = db
    this.#replayDb = replayDb
    this.revocations = new SqliteRevocations(db, options.now ?? systemNow, options.maxRevocationsPerScope)
    this.replay = new SqliteReplayGuard(replayDb, options)
  }

  /**
   * Opens (creating) the store at `file` (`:memory:` for tests).
   * @throws if the file cannot be opened or is not this store's schema.
   */
  static open(file: string, options: UcanStoreOptions = {}): UcanStore {
    const db = connect(file, 'FULL')
    // A second connection to the same file (for `:memory:`, a second database, equally private).
    const replayDb = connect(file, 'NORMAL')
    return new UcanStore(db, replayDb, options)
  }

  /** Commits the replay outcomes still pending, then closes the file; later calls throw. */
  close(): void {
    this.replay.flush()
    this.#db.close()
    this.#replayDb.close()
  }
}

/** Opens `file` in WAL mode with the given `synchronous` level and creates the tables. */
function connect(file: string, synchronous: 'FULL' | 'NORMAL'): Database.Database {
  const db = new Database(file)
  try {
    db.pragma('journal_mode = WAL')
    db.pragma(`synchronous = ${synchronous}`)
    db.transaction(() => {
      db.exec(`
        CREATE TABLE IF NOT EXISTS revocations (
          ucan TEXT NOT NULL, scope TEXT NOT NULL, revoker TEXT NOT NULL, invocation TEXT NOT NULL,
          time INTEGER NOT NULL, log_index INTEGER, PRIMARY KEY (ucan, scope)
        ) WITHOUT ROWID;
      `)
      // Records per scope, kept by a trigger (revocations are never deleted), for the per-scope cap.
      const scoped = (db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'revocation_scopes'`).pluck().get() as number) > 0
      db.exec(`
        CREATE TABLE IF NOT EXISTS revocation_scopes (scope TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TRIGGER IF NOT EXISTS revocation_scope_added AFTER INSERT ON revocations BEGIN
          INSERT INTO revocation_scopes (scope, n) VALUES (new.scope, 1) ON CONFLICT (scope) DO UPDATE SET n = n + 1;
        END;
      `)
      if (!scoped) db.exec('INSERT INTO revocation_scopes (scope, n) SELECT scope, count(*) FROM revocations GROUP BY scope')
      // Files from before per-owner shares: `seen` had no owner (its ids count under the owner ''
      // until they expire) and was WITHOUT ROWID, which puts every ~1 KB outcome on an overflow
      // page of its own (4.7 KB per id measured, against about 1.2 KB in a rowid table).
      const old = db.prepare(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'seen'`).pluck().get() as string | undefined
      const rebuild = old !== undefined && (/WITHOUT ROWID/i.test(old) || !/\bowner\b/.test(old))
      if (rebuild) {
        db.exec(`DROP TRIGGER IF EXISTS seen_owner_added; DROP TRIGGER IF EXISTS seen_owner_removed; DROP INDEX IF EXISTS seen_expiry;
          DROP TABLE IF EXISTS seen_owners; ALTER TABLE seen RENAME TO seen_old`)
      }
      db.exec(`
        CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL, outcome TEXT);
        CREATE INDEX IF NOT EXISTS seen_expiry ON seen (expires_at);
      `)
      if (rebuild) {
        db.exec(`INSERT INTO seen (id, owner, expires_at, outcome) SELECT id, ${/\bowner\b/.test(old!) ? 'owner' : "''"}, expires_at, outcome FROM seen_old;
          DROP TABLE seen_old`)
      }
      const counted = (db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'seen_owners'`).pluck().get() as number) > 0
      // Ids per owner (unexpired or not yet swept), kept by triggers in the same transaction as
      // every write to seen, so a share is checked with one lookup instead of a COUNT over seen.
      db.exec(`
        CREATE TABLE IF NOT EXISTS seen_owners (owner TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TRIGGER IF NOT EXISTS seen_owner_added AFTER INSERT ON seen BEGIN
          INSERT INTO seen_owners (owner, n) VALUES (new.owner, 1) ON CONFLICT (owner) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER IF NOT EXISTS seen_owner_removed AFTER DELETE ON seen BEGIN
          UPDATE seen_owners SET n = n - 1 WHERE owner = old.owner;
          DELETE FROM seen_owners WHERE owner = old.owner AND n <= 0;
        END;
      `)
      if (!counted) db.exec('INSERT INTO seen_owners (owner, n) SELECT owner, count(*) FROM seen GROUP BY owner')
    }).immediate()
  } catch (err) {
    db.close()
    throw err
  }
  return db
}

/**
 * Revocations in SQLite, scoped as `ucan/revoke` (revocation.ts). A revocation is effective once
 * {@link record} resolves. `findRevoked` throws (the caller fails closed) if the file is unusable.
 */
export class SqliteRevocations implements RevocationRecorder {
  readonly #scopes: Database.Statement<[string], { scope: string }>
  readonly #get: Database.Statement<[string, string], RevocationRow>
  readonly #insert: Database.Statement<[string, string, string, string, number, number | null]>
  readonly #setIndex: Database.Statement<[number, string, string]>
  readonly #unlogged: Database.Statement<[], RevocationRow>
  readonly #count: Database.Statement<[], { n: number }>
  readonly #scopeCount: Database.Statement<[string], number>
  readonly #add: (record: RevocationRecord) => boolean
  readonly #now: () => number
  readonly #max: number

  /**
   * @param maxPerScope most records per scope (positive integer); default {@link DEFAULT_REVOCATIONS_PER_SCOPE}.
   * @throws RangeError for a bad `maxPerScope`.
   */
  constructor(db: Database.Database, now: () => number, maxPerScope = DEFAULT_REVOCATIONS_PER_SCOPE) {
    if (!Number.isSafeInteger(maxPerScope) || maxPerScope < 1) throw new RangeError('maxRevocationsPerScope must be a positive integer')
    this.#max = maxPerScope
    this.#scopes = db.prepare('SELECT scope FROM revocations WHERE ucan = ?')
    this.#get = db.prepare('SELECT * FROM revocations WHERE ucan = ? AND scope = ?')
    this.#insert = db.prepare(
      'INSERT OR IGNORE INTO revocations (ucan, scope, revoker, invocation, time, log_index) VALUES (?, ?, ?, ?, ?, ?)',
    )
    this.#setIndex = db.prepare('UPDATE revocations SET log_index = ? WHERE ucan = ? AND scope = ?')
    this.#unlogged = db.prepare('SELECT * FROM revocations WHERE log_index IS NULL ORDER BY time, ucan, scope')
    this.#count = db.prepare('SELECT count(*) AS n FROM revocations')
    this.#scopeCount = db.prepare('SELECT n FROM revocation_scopes WHERE scope = ?').pluck() as Database.Statement<[string], number>
    // Check and insert in one transaction: the cap holds whatever else writes the file.
    this.#add = db.transaction((r: RevocationRecord): boolean => {
      if (this.#get.get(r.ucan, r.scope) !== undefined) return false
      if ((this.#scopeCount.get(r.scope) ?? 0) >= this.#max) throw new RevocationScopeFull(r.scope, this.#max)
      return this.#insert.run(r.ucan, r.scope, r.revoker, r.invocation, r.time, null).changes === 1
    })
    this.#now = now
  }

  async findRevoked(query: RevocationQuery): Promise<string | undefined> {
    for (const [cid, principals] of query) {
      for (const { scope } of this.#scopes.all(cid)) if (principals.has(scope as API.DID)) return cid
    }
    return undefined
  }

  async record(record: RevocationRecord): Promise<{ record: RevocationRecord; created: boolean; index: number | undefined }> {
    const created = this.#add(record)
    const row = this.#get.get(record.ucan, record.scope) as RevocationRow
    return { record: toRecord(row), created, index: row.log_index ?? undefined }
  }

  /**
   * Adds a record read back from the revocation log at `index` (rebuilding a lost index);
   * a record already present only gets its index. Returns whether it was new.
   */
  restore(record: RevocationRecord, index: number): boolean {
    const created = this.#insert.run(record.ucan, record.scope, record.revoker, record.invocation, record.time, index).changes === 1
    if (!created) this.#setIndex.run(index, record.ucan, record.scope)
    return created
  }

  /** The revocation log index of a recorded (ucan, scope), or undefined if not recorded or not yet appended. */
  logIndex(record: Pick<RevocationRecord, 'ucan' | 'scope'>): number | undefined {
    return this.#get.get(record.ucan, record.scope)?.log_index ?? undefined
  }

  /** Notes that `record` is entry `index` of the revocation log. */
  setLogIndex(record: Pick<RevocationRecord, 'ucan' | 'scope'>, index: number): void {
    this.#setIndex.run(index, record.ucan, record.scope)
  }

  /** Records not yet in the revocation log, oldest first. */
  unlogged(): RevocationRecord[] {
    return this.#unlogged.all().map(toRecord)
  }

  /** How many (ucan, scope) revocations are recorded. */
  count(): number {
    return this.#count.get()!.n
  }

  /** The store's clock, Unix seconds (what `time` of a new record should be). */
  now(): number {
    return this.#now()
  }
}

function toRecord(row: RevocationRow): RevocationRecord {
  return { ucan: row.ucan, scope: row.scope as API.DID, revoker: row.revoker as API.DID, invocation: row.invocation, time: row.time }
}

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
