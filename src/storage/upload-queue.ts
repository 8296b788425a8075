/**
 * The durable upload queue: which checkpoint CARs still have to reach their space, and the most
 * recently received Agent→Service delegation of each log to upload them with. One SQLite database
 * (`<data>/uploads.sqlite`, WAL, synchronous=FULL) for every log of a service.
 *
 * Guarantees:
 * - Durable: enqueue, setDelegation, markDone and markFailed are committed when they return.
 * - Idempotent: enqueueing a (space, treeSize) that is already queued or done changes nothing.
 * - A job is done only after markDone; a crash before it leaves the job pending, and the upload is
 *   repeated (Storacha tolerates a blob added twice; a half-done upload leaves orphan blobs, which
 *   are harmless).
 * - Per log, jobs are uploaded oldest first, in groups ({@link UploadQueue.dueGroups}: the oldest
 *   pending job decides when the log is due, the group is its `perLog` oldest pending jobs), so the
 *   uploaded jobs of a log are always its oldest ones.
 * - Bounded: done jobs beyond the newest `keepDone` of each log are deleted when newer ones are
 *   marked done (the status needs only the newest); pending jobs are counted per log
 *   ({@link UploadQueue.pendingCount}) for the service to refuse that log's appends at its bound.
 * - Times (`nextAt`, `error.at`, `done_at`) are the caller's clock, Unix ms; the uploader passes a
 *   monotonic one anchored at the wall clock when it started (storacha-uploader.ts).
 * - Synchronous and single-process (better-sqlite3); one UploadQueue per database file.
 *
 * The public interface is what the uploader, the service's status routes and `ucanlog restore` use:
 * enqueue, dueGroups, nextDue, markDone, markFailed, wake, clampNextAt, pendingCount, setDelegation,
 * delegation, spaces, status, totals, latestTreeSize, close.
 */
import { readFile, stat } from 'node:fs/promises'
import Database from 'better-sqlite3'
import { Delegation } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { boundSqliteCache, sqliteCacheBytes } from './sqlite-cache.js'

/** Name of the queue database inside the data directory. */
export const UPLOAD_QUEUE_FILE = 'uploads.sqlite'
/** Default most pending checkpoints per log before its appends are refused (the service's bound, `--upload-backlog-max`). */
export const DEFAULT_UPLOAD_BACKLOG_MAX = 10_000
/** Default done jobs kept per log (the newest ones); older done rows are deleted. */
export const DEFAULT_UPLOAD_KEEP_DONE = 16

/** Options of UploadQueue. */
export interface UploadQueueOptions {
  /** Done jobs kept per log, the newest ones, integer ≥ 1 (default {@link DEFAULT_UPLOAD_KEEP_DONE}). */
  keepDone?: number
  /** Page cache of the queue's connection, bytes (sqlite-cache.ts; default 2 MiB). */
  cacheBytes?: number
}

/** One checkpoint CAR to store in a space. */
export interface UploadJob {
  /** The log id: the space DID. */
  space: string
  /** Tree size (entries) of the checkpoint the CAR publishes. */
  treeSize: number
  /** CID of the CAR's root UnixFS directory (the upload's root). */
  root: string
  /** Where the CAR is, for messages: its absolute path (SQLite queue; the file read), or its `log_cars` row (PostgreSQL queue). */
  carFile: string
  /** CID of the CAR (codec 0x0202, sha2-256). */
  carCid: string
  /** Failed attempts so far. */
  attempts: number
  /** When the next attempt may run, Unix ms. */
  nextAt: number
}

/**
 * What the uploader (storacha-uploader.ts) and the service's status routes need of a queue: the
 * SQLite {@link UploadQueue} of one process (synchronous) or the PostgreSQL queue several instances
 * share (src/storage/postgres/pg-upload-queue.ts, asynchronous, each group claimed by one instance).
 * Every method has the meaning documented on UploadQueue; callers await every result.
 */
export interface UploadQueueStore {
  /** Queues a checkpoint CAR (idempotent); true when it was new. */
  enqueue(job: Pick<UploadJob, 'space' | 'treeSize' | 'root' | 'carFile' | 'carCid'>, now: number): boolean | Promise<boolean>
  /** The groups to upload now (on a shared queue: claimed for this instance until marked done or failed). */
  dueGroups(now: number, perLog: number, maxLogs: number): UploadJob[][] | Promise<UploadJob[][]>
  /** When the next log is due, Unix ms; undefined when nothing is pending (or every pending log is claimed by another instance). */
  nextDue(): number | undefined | Promise<number | undefined>
  markDone(space: string, treeSizes: number | readonly number[], now: number): void | Promise<void>
  markFailed(space: string, treeSizes: number | readonly number[], error: UploadError, nextAt: number): void | Promise<void>
  clampNextAt(latest: number): void | Promise<void>
  pendingCount(space: string): number | Promise<number>
  wake(space: string, now: number): void | Promise<void>
  setDelegation(space: string, delegation: API.Delegation): Promise<boolean>
  delegation(space: string): Promise<API.Delegation | undefined>
  spaces(): string[] | Promise<string[]>
  status(space: string): UploadStatus | undefined | Promise<UploadStatus | undefined>
  totals(): { pendingCheckpoints: number; lagEntries: number; failingLogs: number } | Promise<{ pendingCheckpoints: number; lagEntries: number; failingLogs: number }>
  /** The length of a job's CAR, bytes. @throws when the CAR cannot be read (the uploader names it CarMissing). */
  carSize(job: UploadJob): Promise<number>
  /** A job's CAR bytes. @throws when the CAR cannot be read (the uploader names it CarMissing). */
  readCar(job: UploadJob): Promise<Uint8Array>
  /**
   * Set on a queue other processes also fill and drain: the uploader looks for due work at least
   * this often, ms (jobs other instances queued, claims of dead instances expired).
   */
  readonly pollMs?: number
}

/** Why the last attempt of a job failed: a stable name and a short message. */
export interface UploadError {
  name: string
  message: string
  /** Unix ms. */
  at: number
}

/** The upload state of one log. */
export interface UploadStatus {
  /** `uploaded`: every packed checkpoint is in the space; `pending`: uploads queued, none failing; `failing`: the last attempt failed (see `error`). */
  state: 'uploaded' | 'pending' | 'failing'
  /** Largest tree size T such that the CAR of every checkpoint ≤ T is in the space (0: none). */
  uploadedTreeSize: number
  /** Tree size of the newest checkpoint queued for upload (0: none). */
  latestTreeSize: number
  /** Entries published but not yet in the space: latestTreeSize − uploadedTreeSize. */
  lagEntries: number
  /** Checkpoint CARs not yet uploaded. */
  pendingCheckpoints: number
  /** Root CID of the newest upload in the space, if any. */
  latestRoot?: string
  /** The last failure, while the log is failing. */
  error?: UploadError
  /** Next attempt (of the oldest pending checkpoint, with the ones after it), Unix ms, while uploads are pending. */
  nextAttemptAt?: number
}

interface JobRow {
  space: string
  tree_size: number
  root: string
  car_file: string
  car_cid: string
  attempts: number
  next_at: number
}

const SCHEMA_VERSION = 1
const SCHEMA = `
  CREATE TABLE jobs (
    space      TEXT    NOT NULL,
    tree_size  INTEGER NOT NULL,
    root       TEXT    NOT NULL,
    car_file   TEXT    NOT NULL,
    car_cid    TEXT    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL DEFAULT 0,
    error_name TEXT,
    error_msg  TEXT,
    error_at   INTEGER,
    done_at    INTEGER,
    PRIMARY KEY (space, tree_size)
  ) WITHOUT ROWID;
  CREATE INDEX jobs_due ON jobs (next_at) WHERE done_at IS NULL;
  -- The most recently received Agent→Service delegation per log (ucanto archive bytes).
  CREATE TABLE delegations (
    space      TEXT PRIMARY KEY,
    cid        TEXT    NOT NULL,
    expiration INTEGER NOT NULL,
    archive    BLOB    NOT NULL
  ) WITHOUT ROWID;
`

/** The queue; see the module comment. */
export class UploadQueue implements UploadQueueStore {
  private readonly db: Database.Database
  private readonly delegationCids = new Map<string, string>()
  private readonly keepDone: number

  /** Opens (creating if missing) the queue database at `file`. @throws RangeError when keepDone < 1. */
  constructor(file: string, o: UploadQueueOptions = {}) {
    this.keepDone = o.keepDone ?? DEFAULT_UPLOAD_KEEP_DONE
    if (!Number.isInteger(this.keepDone) || this.keepDone < 1) throw new RangeError('keepDone must be an integer ≥ 1')
    this.db = new Database(file)
    try {
      boundSqliteCache(this.db, o.cacheBytes)
      this.db.pragma('journal_mode = WAL')
      this.db.pragma('synchronous = FULL')
      this.db.transaction(() => {
        const version = this.db.pragma('user_version', { simple: true }) as number
        if (version === 0) {
          this.db.exec(SCHEMA)
          this.db.pragma(`user_version = ${SCHEMA_VERSION}`)
        } else if (version !== SCHEMA_VERSION) {
          throw new Error(`${file}: unknown upload queue schema version ${version}`)
        }
      }).immediate()
    } catch (err) {
      this.db.close()
      throw err
    }
  }

  /** Queues a checkpoint CAR (no-op if this space and tree size is known). Returns true if it was new. */
  enqueue(job: Pick<UploadJob, 'space' | 'treeSize' | 'root' | 'carFile' | 'carCid'>, now: number): boolean {
    const r = this.db
      .prepare('INSERT OR IGNORE INTO jobs (space, tree_size, root, car_file, car_cid, next_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(job.space, job.treeSize, job.root, job.carFile, job.carCid, now)
    return r.changes > 0
  }

  /** Largest tree size ever queued for `space` (0: none). */
  latestTreeSize(space: string): number {
    const r = this.db.prepare('SELECT MAX(tree_size) AS t FROM jobs WHERE space = ?').get(space) as { t: number | null }
    return r.t ?? 0
  }

  /**
   * The groups of jobs to upload now: for each log whose oldest pending job is due at `now` (Unix
   * ms), its `perLog` oldest pending jobs (whatever their own next attempt), oldest first; at most
   * `maxLogs` logs, the longest waiting first.
   * @param perLog integer ≥ 1. @param maxLogs integer ≥ 1.
   */
  dueGroups(now: number, perLog: number, maxLogs: number): UploadJob[][] {
    const heads = this.db
      .prepare(
        `SELECT space, next_at FROM (
           SELECT space, MIN(tree_size) AS t, next_at FROM jobs WHERE done_at IS NULL GROUP BY space
         ) WHERE next_at <= ? ORDER BY next_at, space LIMIT ?`,
      )
      .all(now, maxLogs) as { space: string }[]
    const group = this.db.prepare('SELECT * FROM jobs WHERE space = ? AND done_at IS NULL ORDER BY tree_size LIMIT ?')
    return heads.map((h) => (group.all(h.space, perLog) as JobRow[]).map(toJob))
  }

  /** When the next log is due (its oldest pending job's next attempt), Unix ms; undefined when nothing is pending. */
  nextDue(): number | undefined {
    const r = this.db
      .prepare('SELECT MIN(next_at) AS t FROM (SELECT space, MIN(tree_size) AS t, next_at FROM jobs WHERE done_at IS NULL GROUP BY space)')
      .get() as { t: number | null }
    return r.t ?? undefined
  }

  /**
   * Marks jobs uploaded (one transaction), then deletes the log's done jobs older than its newest
   * `keepDone`.
   */
  markDone(space: string, treeSizes: number | readonly number[], now: number): void {
    const done = this.db.prepare('UPDATE jobs SET done_at = ?, error_name = NULL, error_msg = NULL, error_at = NULL WHERE space = ? AND tree_size = ?')
    const prune = this.db.prepare(
      `DELETE FROM jobs WHERE space = ? AND done_at IS NOT NULL AND tree_size <
         (SELECT tree_size FROM jobs WHERE space = ? AND done_at IS NOT NULL ORDER BY tree_size DESC LIMIT 1 OFFSET ?)`,
    )
    this.db.transaction(() => {
      for (const t of typeof treeSizes === 'number' ? [treeSizes] : treeSizes) done.run(now, space, t)
      prune.run(space, space, this.keepDone - 1)
    }).immediate()
  }

  /** Records a failed attempt of jobs (one transaction) and when to try again (Unix ms). */
  markFailed(space: string, treeSizes: number | readonly number[], error: UploadError, nextAt: number): void {
    const failed = this.db.prepare('UPDATE jobs SET attempts = attempts + 1, next_at = ?, error_name = ?, error_msg = ?, error_at = ? WHERE space = ? AND tree_size = ?')
    this.db.transaction(() => {
      for (const t of typeof treeSizes === 'number' ? [treeSizes] : treeSizes) failed.run(nextAt, error.name, error.message, error.at, space, t)
    }).immediate()
  }

  /**
   * Moves every pending job's next attempt to at most `latest` (Unix ms): a schedule written under a
   * clock that was ahead (or by an earlier process) never postpones an upload past one backoff.
   */
  clampNextAt(latest: number): void {
    this.db.prepare('UPDATE jobs SET next_at = ? WHERE done_at IS NULL AND next_at > ?').run(latest, latest)
  }

  /** Checkpoint CARs of `space` not yet uploaded (its backlog; one indexed count). */
  pendingCount(space: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM jobs WHERE space = ? AND done_at IS NULL').get(space) as { n: number }).n
  }

  /** Makes every pending job of `space` due at `now` (after a new delegation arrived). */
  wake(space: string, now: number): void {
    this.db.prepare('UPDATE jobs SET next_at = ? WHERE space = ? AND done_at IS NULL AND next_at > ?').run(now, space, now)
  }

  /**
   * Keeps `delegation` as the log's delegation for uploads: the most recently received one wins
   * (each arrives with an append that was just authorized with it, so it was valid and unrevoked
   * then). Returns true when it replaced the kept one.
   */
  async setDelegation(space: string, delegation: API.Delegation): Promise<boolean> {
    const cid = delegation.cid.toString()
    if (this.delegationCids.get(space) === cid) return false
    const current = this.db.prepare('SELECT cid FROM delegations WHERE space = ?').get(space) as { cid: string } | undefined
    this.delegationCids.set(space, cid)
    if (current?.cid === cid) return false
    const archive = await Delegation.archive(delegation)
    if (archive.error) throw archive.error
    this.db.prepare('INSERT OR REPLACE INTO delegations (space, cid, expiration, archive) VALUES (?, ?, ?, ?)').run(space, cid, expiryOf(delegation), archive.ok)
    return true
  }

  /** The kept delegation of `space`, if any. */
  async delegation(space: string): Promise<API.Delegation | undefined> {
    const row = this.db.prepare('SELECT archive FROM delegations WHERE space = ?').get(space) as { archive: Uint8Array } | undefined
    if (!row) return undefined
    const d = await Delegation.extract(new Uint8Array(row.archive))
    if (d.error) throw d.error
    return d.ok
  }

  /** Every space with at least one queued job. */
  spaces(): string[] {
    return (this.db.prepare('SELECT DISTINCT space FROM jobs ORDER BY space').all() as { space: string }[]).map((r) => r.space)
  }

  /** The upload status of `space`, undefined when nothing was ever queued for it. */
  status(space: string): UploadStatus | undefined {
    const agg = this.db
      .prepare(
        `SELECT MAX(tree_size) AS latest,
                SUM(done_at IS NULL) AS pending,
                MIN(CASE WHEN done_at IS NULL THEN tree_size END) AS first_pending
         FROM jobs WHERE space = ?`,
      )
      .get(space) as { latest: number | null; pending: number | null; first_pending: number | null }
    if (agg.latest === null) return undefined
    // The log is next attempted when its oldest pending job is due (dueGroups).
    const head = agg.first_pending === null ? undefined : (this.db.prepare('SELECT next_at FROM jobs WHERE space = ? AND tree_size = ?').get(space, agg.first_pending) as { next_at: number })
    const uploaded = this.db
      .prepare('SELECT MAX(tree_size) AS t FROM jobs WHERE space = ? AND done_at IS NOT NULL AND tree_size < ?')
      .get(space, agg.first_pending ?? Number.MAX_SAFE_INTEGER) as { t: number | null }
    const latestDone = this.db
      .prepare('SELECT root FROM jobs WHERE space = ? AND done_at IS NOT NULL ORDER BY tree_size DESC LIMIT 1')
      .get(space) as { root: string } | undefined
    const failing = this.db
      .prepare('SELECT error_name, error_msg, error_at FROM jobs WHERE space = ? AND done_at IS NULL AND error_name IS NOT NULL ORDER BY tree_size LIMIT 1')
      .get(space) as { error_name: string; error_msg: string; error_at: number } | undefined
    const uploadedTreeSize = uploaded.t ?? 0
    const status: UploadStatus = {
      state: (agg.pending ?? 0) === 0 ? 'uploaded' : failing ? 'failing' : 'pending',
      uploadedTreeSize,
      latestTreeSize: agg.latest,
      lagEntries: agg.latest - uploadedTreeSize,
      pendingCheckpoints: agg.pending ?? 0,
    }
    if (latestDone) status.latestRoot = latestDone.root
    if (failing) status.error = { name: failing.error_name, message: failing.error_msg, at: failing.error_at }
    if (head) status.nextAttemptAt = head.next_at
    return status
  }

  /**
   * Totals over every log, for the metrics: checkpoint CARs not yet uploaded, and the entries they
   * hold that are published but not yet in their space (the sum of each log's `lagEntries`; 0 when
   * nothing is pending). One indexed scan of the pending jobs (the `jobs_due` index) plus one
   * lookup per log with pending jobs.
   */
  totals(): { pendingCheckpoints: number; lagEntries: number; failingLogs: number } {
    const rows = this.db
      .prepare(
        `SELECT space, COUNT(*) AS pending, MIN(tree_size) AS first_pending, MAX(tree_size) AS latest, SUM(error_name IS NOT NULL) AS failing
         FROM jobs WHERE done_at IS NULL GROUP BY space`,
      )
      .all() as { space: string; pending: number; first_pending: number; latest: number; failing: number }[]
    const uploadedBelow = this.db.prepare('SELECT MAX(tree_size) AS t FROM jobs WHERE space = ? AND done_at IS NOT NULL AND tree_size < ?')
    let pendingCheckpoints = 0
    let lagEntries = 0
    let failingLogs = 0
    for (const r of rows) {
      pendingCheckpoints += r.pending
      lagEntries += r.latest - (((uploadedBelow.get(r.space, r.first_pending) as { t: number | null }).t) ?? 0)
      if (r.failing > 0) failingLogs++
    }
    return { pendingCheckpoints, lagEntries, failingLogs }
  }

  /** The length of the job's CAR file, bytes. @throws the file system's error (e.g. ENOENT). */
  async carSize(job: UploadJob): Promise<number> {
    return (await stat(job.carFile)).size
  }

  /** The job's CAR file's bytes. @throws the file system's error (e.g. ENOENT). */
  async readCar(job: UploadJob): Promise<Uint8Array> {
    return new Uint8Array(await readFile(job.carFile))
  }

  /** False once {@link close} ran. */
  get isOpen(): boolean {
    return this.db.open
  }

  /** Closes the database. */
  /** The page cache bound of the queue's connection, bytes (read back from SQLite). */
  get sqliteCacheBytes(): number {
    return sqliteCacheBytes(this.db)
  }

  close(): void {
    if (this.db.open) this.db.close()
  }
}

/** The earliest expiry (Unix seconds) in a delegation's chain; Infinity maps to MAX_SAFE_INTEGER. */
export function expiryOf(d: API.Delegation): number {
  let exp = d.expiration ?? Infinity
  for (const p of d.proofs) {
    if (typeof p === 'object' && p !== null && 'expiration' in p) exp = Math.min(exp, expiryOf(p as API.Delegation))
  }
  return Number.isFinite(exp) ? exp : Number.MAX_SAFE_INTEGER
}

function toJob(r: JobRow): UploadJob {
  return { space: r.space, treeSize: r.tree_size, root: r.root, carFile: r.car_file, carCid: r.car_cid, attempts: r.attempts, nextAt: r.next_at }
}
