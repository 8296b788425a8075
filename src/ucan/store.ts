/**
 * The UCAN layer's durable state in one SQLite file (better-sqlite3; default `<data>/ucan.db`):
 * revocations (`ucan/revoke`) and the replay guard's seen invocations, each through its own
 * connection, WAL journal. Revocations use `synchronous = FULL`: durable (survives kill -9 and
 * power loss) once the call that made them returns. Seen invocations use `synchronous = NORMAL`:
 * durable across a process crash (kill -9) as soon as written, but the last ones may be lost on
 * power loss — the price of not blocking the event loop on two fsyncs per append. One process
 * owns the file.
 *
 * Revocations here are the index the authorizer queries on every append; the revocation
 * transparency log (src/server/revocations.ts) is the public, signed copy. Each row remembers its
 * log index once appended, so the two are kept in step: rows without an index are appended again
 * after a crash, and a lost index is rebuilt from the log.
 */
import Database from 'better-sqlite3'
import type { API } from '@ucanto/core'
import { systemNow } from './authorize.js'
import { DEFAULT_MAX_REPLAY_ENTRIES, type ReplayGuard, ReplayGuardFull } from './replay.js'
import type { RevocationQuery, RevocationRecord, RevocationRecorder } from './revocation.js'

/** Options of {@link UcanStore.open}. */
export interface UcanStoreOptions {
  /** Clock, Unix seconds; default the system clock. */
  now?: () => number
  /** Most invocations the replay guard remembers at once; default {@link DEFAULT_MAX_REPLAY_ENTRIES}. */
  maxReplayEntries?: number
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
    this.revocations = new SqliteRevocations(db, options.now ?? systemNow)
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

  /** Closes the file; later calls throw. */
  close(): void {
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
    db.exec(`
      CREATE TABLE IF NOT EXISTS revocations (
        ucan TEXT NOT NULL, scope TEXT NOT NULL, revoker TEXT NOT NULL, invocation TEXT NOT NULL,
        time INTEGER NOT NULL, log_index INTEGER, PRIMARY KEY (ucan, scope)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS seen (
        id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, outcome TEXT
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS seen_expiry ON seen (expires_at);
    `)
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
  readonly #now: () => number

  constructor(db: Database.Database, now: () => number) {
    this.#scopes = db.prepare('SELECT scope FROM revocations WHERE ucan = ?')
    this.#get = db.prepare('SELECT * FROM revocations WHERE ucan = ? AND scope = ?')
    this.#insert = db.prepare(
      'INSERT OR IGNORE INTO revocations (ucan, scope, revoker, invocation, time, log_index) VALUES (?, ?, ?, ?, ?, ?)',
    )
    this.#setIndex = db.prepare('UPDATE revocations SET log_index = ? WHERE ucan = ? AND scope = ?')
    this.#unlogged = db.prepare('SELECT * FROM revocations WHERE log_index IS NULL ORDER BY time, ucan, scope')
    this.#count = db.prepare('SELECT count(*) AS n FROM revocations')
    this.#now = now
  }

  async findRevoked(query: RevocationQuery): Promise<string | undefined> {
    for (const [cid, principals] of query) {
      for (const { scope } of this.#scopes.all(cid)) if (principals.has(scope as API.DID)) return cid
    }
    return undefined
  }

  async record(record: RevocationRecord): Promise<{ record: RevocationRecord; created: boolean; index: number | undefined }> {
    const created = this.#insert.run(record.ucan, record.scope, record.revoker, record.invocation, record.time, null).changes === 1
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

/**
 * A durable {@link ReplayGuard}: each id is inserted (outcome pending) before its task runs and
 * its outcome stored as JSON when the task resolves, so a retry — in this process or after a
 * restart — gets the first outcome and never runs the task again. Outcomes must be plain JSON
 * data. A task that rejects is forgotten (it is the caller's to turn failures into outcomes). An
 * id whose outcome was still pending when the process died resolves to {@link UNKNOWN_OUTCOME}.
 * In memory it holds only the tasks in flight; rows are swept once their `exp` has passed, and at
 * most `maxReplayEntries` unexpired ids are kept (`once` rejects with `ReplayGuardFull` beyond).
 */
export class SqliteReplayGuard implements ReplayGuard {
  readonly #get: Database.Statement<[string], { expires_at: number; outcome: string | null }>
  readonly #insert: Database.Statement<[string, number]>
  readonly #settle: Database.Statement<[string, string]>
  readonly #forget: Database.Statement<[string]>
  readonly #sweep: Database.Statement<[number]>
  readonly #count: Database.Statement<[], { n: number }>
  readonly #inFlight = new Map<string, Promise<unknown>>()
  readonly #now: () => number
  readonly #max: number
  #size: number
  #nextSweep = -Infinity

  constructor(db: Database.Database, options: UcanStoreOptions = {}) {
    this.#now = options.now ?? systemNow
    this.#max = options.maxReplayEntries ?? DEFAULT_MAX_REPLAY_ENTRIES
    if (!Number.isSafeInteger(this.#max) || this.#max < 1) throw new RangeError('maxReplayEntries must be a positive integer')
    this.#get = db.prepare('SELECT expires_at, outcome FROM seen WHERE id = ?')
    this.#insert = db.prepare('INSERT OR REPLACE INTO seen (id, expires_at, outcome) VALUES (?, ?, NULL)')
    this.#settle = db.prepare('UPDATE seen SET outcome = ? WHERE id = ?')
    this.#forget = db.prepare('DELETE FROM seen WHERE id = ?')
    this.#sweep = db.prepare('DELETE FROM seen WHERE expires_at < ?')
    this.#count = db.prepare('SELECT count(*) AS n FROM seen')
    this.#size = this.#count.get()!.n
  }

  once<T>(id: string, expiresAt: number, task: () => Promise<T>): Promise<T> {
    const flying = this.#inFlight.get(id)
    if (flying !== undefined) return flying as Promise<T>
    let outcome: Promise<T>
    try {
      const t = this.#now()
      if (t >= this.#nextSweep) this.#doSweep(t)
      const row = this.#get.get(id)
      if (row !== undefined && row.expires_at >= t) {
        return Promise.resolve((row.outcome === null ? UNKNOWN_OUTCOME : JSON.parse(row.outcome)) as T)
      }
      if (this.#size >= this.#max) {
        this.#doSweep(t)
        if (this.#size >= this.#max) return Promise.reject(new ReplayGuardFull('replay guard is full'))
      }
      if (row === undefined) this.#size++
      this.#insert.run(id, Number.isFinite(expiresAt) ? expiresAt : Number.MAX_SAFE_INTEGER)
    } catch (err) {
      return Promise.reject(err)
    }
    outcome = (async () => task())().then(
      (value) => {
        this.#settle.run(JSON.stringify(value), id)
        return value
      },
      (err: unknown) => {
        this.#forget.run(id)
        this.#size--
        throw err
      },
    )
    // Registered before the task's first await, so a concurrent duplicate sees it.
    this.#inFlight.set(id, outcome)
    outcome.then(
      () => this.#inFlight.delete(id),
      () => this.#inFlight.delete(id),
    )
    return outcome
  }

  /** Ids remembered (unexpired or not yet swept). */
  get size(): number {
    return this.#size
  }

  #doSweep(t: number): void {
    this.#sweep.run(t)
    this.#size = this.#count.get()!.n
    this.#nextSweep = t + 1
  }
}

/**
 * What {@link SqliteReplayGuard} returns for an invocation whose first run had started but not
 * finished when the process stopped: the entry may or may not have been appended, so the retry
 * is not run again.
 */
export const UNKNOWN_OUTCOME = {
  error: { name: 'InternalError', message: 'the first attempt of this invocation did not finish; its outcome is unknown' },
} as const
