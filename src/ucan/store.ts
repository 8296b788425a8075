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
import { systemNow } from './clock.js'
import { DEFAULT_REPLAY_PER_SPACE } from './replay.js'
import { DEFAULT_REVOCATIONS_PER_SCOPE } from './revocation.js'
import { SqliteReplayGuard } from './sqlite-replay.js'
import { SqliteRevocations } from './sqlite-revocations.js'
import { boundSqliteCache, sqliteCacheBytes } from '../storage/sqlite-cache.js'

/** Options of {@link UcanStore.open}. */
export interface UcanStoreOptions {
  /** Clock, Unix seconds; default the system clock. */
  now?: () => number
  /**
   * Monotonic seconds for the replay guard's forgetting clock (src/ucan/clock.ts forgettingClockOf):
   * with `now`, the guard forgets nothing early when `now` jumps forward. Default: none when `now`
   * is injected (it is used as is), performance.now otherwise.
   */
  monotonic?: () => number
  /** Most revocation records per principal (scope); default {@link DEFAULT_REVOCATIONS_PER_SCOPE}. */
  maxRevocationsPerScope?: number
  /** Page cache of each of the file's two connections, bytes (src/storage/sqlite-cache.ts; default 2 MiB). */
  cacheBytes?: number
  /** Most unexpired invocations the replay guard remembers per owner (space); default {@link DEFAULT_REPLAY_PER_SPACE}. */
  maxReplayPerOwner?: number
  /**
   * Most replay outcomes kept in memory after their group commit failed, to be committed again
   * (sqlite-replay.ts, issue 15 item 2); integer ≥ 0, default DEFAULT_REPLAY_UNCOMMITTED (10,000).
   */
  maxUncommittedOutcomes?: number
  /**
   * Called inside each group commit of replay outcomes, just before it commits, with the ids it
   * makes durable and the `synchronous` level in effect (2 = FULL). Throwing rolls the batch back
   * (its callers' promises reject). For tests and metrics; default none.
   */
  onReplayCommit?: (commit: { ids: readonly string[]; synchronous: number }) => void
}

/** The SQLite file holding revocations and seen invocations. */
export class UcanStore {
  readonly #db: Database.Database
  readonly #replayDb: Database.Database
  /** Revocations: the authorizer's revocation store and `ucan/revoke`'s recorder. */
  readonly revocations: SqliteRevocations
  /** Seen invocations: the durable replay guard. */
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
    const db = connect(file, 'FULL', options.cacheBytes)
    // A second connection to the same file (for `:memory:`, a second database, equally private).
    const replayDb = connect(file, 'NORMAL', options.cacheBytes)
    return new UcanStore(db, replayDb, options)
  }

  /** The page cache bound of the store's connections, bytes (read back from SQLite; the larger of the two). */
  get sqliteCacheBytes(): number {
    return Math.max(sqliteCacheBytes(this.#db), sqliteCacheBytes(this.#replayDb))
  }

  /** Admits the replay guard's pending calls and commits the outcomes still pending, then closes the file; later calls throw. */
  close(): void {
    this.replay.admitPending()
    this.replay.flush()
    this.#db.close()
    this.#replayDb.close()
  }
}

/** Opens `file` in WAL mode with the given `synchronous` level and page cache bound (bytes), and creates the tables. */
function connect(file: string, synchronous: 'FULL' | 'NORMAL', cacheBytes: number | undefined): Database.Database {
  const db = new Database(file)
  try {
    boundSqliteCache(db, cacheBytes)
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
