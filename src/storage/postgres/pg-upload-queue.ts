/**
 * The Storacha upload queue on PostgreSQL (issue 14 item 3; docs/storage.md, PostgreSQL: the upload
 * queue): the contract of the SQLite {@link UploadQueue} (upload-queue.ts: durable, idempotent,
 * per-log oldest-first groups, retries with backoff, the backlog count, done-row pruning, the
 * `/head` lag figures), shared by every `ucanlog serve` instance on the database, any of which
 * drains any log's uploads.
 *
 * - A job is a row of `log_upload_jobs` per checkpoint CAR (the CAR itself stays in `log_cars`).
 *   With uploads on, {@link queueCarIn} inserts it in the SAME transaction that stores the CAR
 *   (pg-archive.ts), so no packed checkpoint is ever left unqueued, whichever instance dies when;
 *   {@link PgUploadQueue.catchUp} queues, once at start, CARs packed while uploads were off.
 * - Claims: {@link PgUploadQueue.dueGroups} takes each due log's oldest pending row with
 *   `SELECT … FOR UPDATE SKIP LOCKED` (a row another instance is claiming is skipped, never waited
 *   for) and marks the log's group `claim_holder` = this instance, `claim_until` = the database's
 *   `now()` + `claimMs`, renewed every third of it while the attempt runs. A log whose oldest
 *   pending row is claimed (and the claim not expired) is not due for anyone else: one group per
 *   log in flight in the whole service, its rows uploaded by one instance at a time.
 * - An instance that dies mid-upload stops renewing: its claim expires after at most `claimMs` and
 *   the next instance looking (every `pollMs`) claims the same rows and uploads them again. The
 *   same CAR gives the same blocks, shard and roots (same CIDs): a repeated upload is harmless.
 * - markDone records the upload whoever claims the rows now (it happened); markFailed (the retry
 *   schedule) only while the claim is still this instance's, so a late failure never overwrites
 *   the schedule of the instance that took the rows over. Both end this instance's claim on
 *   the whole log (the rows of a group the attempt trimmed by bytes included).
 * - Times in `next_at`, `error_at` and `done_at` are Unix ms of the callers' clocks (the instances'
 *   uploaders; a job is queued at the database's clock); claims use only the database's clock.
 * - The kept Agent→Service delegation of each log is a row of `log_upload_delegations`; it is read
 *   from the database at every use (no cache another instance could contradict).
 *
 * The pool is the caller's; this class never ends it.
 */
import { Delegation } from '@ucanto/core'
import type { API } from '@ucanto/core'
import type pg from 'pg'
import { DEFAULT_UPLOAD_KEEP_DONE, expiryOf, type UploadError, type UploadJob, type UploadQueueStore, type UploadStatus } from '../upload-queue.js'
import { namedDatabaseError } from './errors.js'
import { defaultHolder } from './lease.js'
import type { MigrationStep } from './migrate.js'
import { inTransaction } from './transaction.js'

/** The upload queue's schema steps (the log area's, after schema.ts's; src/server/migrations.ts). */
export const UPLOAD_QUEUE_MIGRATIONS: readonly MigrationStep[] = [
  {
    id: 'log-0003-upload-queue',
    sql: `
      -- One row per checkpoint CAR (log_cars) to store in its Storacha space; done rows beyond the
      -- newest --upload-keep-done of a log are deleted. claim_*: the instance uploading it now.
      CREATE TABLE log_upload_jobs (
        space        text        NOT NULL,
        tree_size    bigint      NOT NULL,
        root         text        NOT NULL,
        car_cid      text        NOT NULL,
        bytes        bigint      NOT NULL,
        attempts     integer     NOT NULL DEFAULT 0,
        next_at      bigint      NOT NULL,
        error_name   text,
        error_msg    text,
        error_at     bigint,
        done_at      bigint,
        claim_holder text,
        claim_until  timestamptz,
        PRIMARY KEY (space, tree_size)
      );
      CREATE INDEX log_upload_jobs_pending ON log_upload_jobs (space, tree_size) WHERE done_at IS NULL;
      -- The most recently received Agent→Service delegation of each log (ucanto archive bytes).
      CREATE TABLE log_upload_delegations (
        space      text   PRIMARY KEY,
        cid        text   NOT NULL,
        expiration bigint NOT NULL,
        archive    bytea  NOT NULL
      );
    `,
  },
]

/** The database's clock as Unix ms (one clock for every instance's queued jobs). */
const DB_NOW_MS = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`

/**
 * Queues the CAR of checkpoint `treeSize` of `logId` for upload, due at once, inside the caller's
 * transaction `c` (the one storing the CAR in `log_cars`). Idempotent.
 */
export async function queueCarIn(c: pg.ClientBase, job: { logId: string; treeSize: number; root: string; carCid: string; bytes: number }): Promise<void> {
  await c.query(
    `INSERT INTO log_upload_jobs (space, tree_size, root, car_cid, bytes, next_at) VALUES ($1, $2, $3, $4, $5, ${DB_NOW_MS})
     ON CONFLICT (space, tree_size) DO NOTHING`,
    [job.logId, job.treeSize, job.root, job.carCid, job.bytes],
  )
}

/** Options of {@link PgUploadQueue}. */
export interface PgUploadQueueOptions {
  /** Done jobs kept per log, the newest ones, integer ≥ 1 (default DEFAULT_UPLOAD_KEEP_DONE). */
  keepDone?: number
  /** How long a claim lasts without renewal, ms, ≥ 100 (renewed every third of it); default 5000. */
  claimMs?: number
  /** This instance's name in `claim_holder`; default host/pid/random. */
  holder?: string
  /** Fault injection for tests: false never renews claims (as a paused or dead instance would not). Default true. */
  renew?: boolean
}

/** Default claim duration, ms (the service passes --database-lease). */
export const DEFAULT_UPLOAD_CLAIM_MS = 5000

interface JobRow {
  space: string
  tree_size: string
  root: string
  car_cid: string
  bytes: string
  attempts: number
  next_at: string
}

function toJob(r: JobRow): UploadJob & { bytes: number } {
  const treeSize = Number(r.tree_size)
  return { space: r.space, treeSize, root: r.root, carFile: `PostgreSQL log_cars (log_id ${r.space}, tree_size ${treeSize})`, carCid: r.car_cid, attempts: r.attempts, nextAt: Number(r.next_at), bytes: Number(r.bytes) }
}

const sizesOf = (t: number | readonly number[]) => (typeof t === 'number' ? [t] : [...t])

/** The shared queue; see the module comment. */
export class PgUploadQueue implements UploadQueueStore {
  readonly holder: string
  /** The uploader looks for work other instances queued (or left behind) at least this often, ms. */
  readonly pollMs: number
  private readonly keepDone: number
  private readonly claimMs: number
  /** Logs whose rows this instance claimed and has not yet marked done or failed (renewed on a timer); at most maxLogs of one dueGroups. */
  private readonly claimed = new Set<string>()
  private renewer: NodeJS.Timeout | undefined
  private closed = false

  /** @throws RangeError for keepDone < 1 or claimMs < 100. */
  constructor(
    private readonly pool: pg.Pool,
    private readonly o: PgUploadQueueOptions = {},
  ) {
    this.keepDone = o.keepDone ?? DEFAULT_UPLOAD_KEEP_DONE
    if (!Number.isInteger(this.keepDone) || this.keepDone < 1) throw new RangeError('keepDone must be an integer ≥ 1')
    this.claimMs = o.claimMs ?? DEFAULT_UPLOAD_CLAIM_MS
    if (!Number.isInteger(this.claimMs) || this.claimMs < 100) throw new RangeError('claimMs must be an integer ≥ 100')
    this.holder = o.holder ?? defaultHolder()
    this.pollMs = this.claimMs
  }

  /** Queues a checkpoint CAR (no-op if known); its CAR must be in `log_cars`. Returns true if it was new. @throws DatabaseUnavailableError */
  async enqueue(job: Pick<UploadJob, 'space' | 'treeSize' | 'root' | 'carFile' | 'carCid'>, now: number): Promise<boolean> {
    const r = await this.query(
      `INSERT INTO log_upload_jobs (space, tree_size, root, car_cid, bytes, next_at)
         SELECT $1, $2, $3, $4, octet_length(car), $5 FROM log_cars WHERE log_id = $1 AND tree_size = $2
       ON CONFLICT (space, tree_size) DO NOTHING`,
      [job.space, job.treeSize, job.root, job.carCid, now],
    )
    return r.rowCount! > 0
  }

  /**
   * Queues every CAR in `log_cars` newer than its log's newest queued one (packed while uploads
   * were off), due at once; returns how many. One statement; run at start.
   * @throws DatabaseUnavailableError
   */
  async catchUp(): Promise<number> {
    const r = await this.query(
      `INSERT INTO log_upload_jobs (space, tree_size, root, car_cid, bytes, next_at)
         SELECT c.log_id, c.tree_size, c.root, c.car_cid, octet_length(c.car), ${DB_NOW_MS} FROM log_cars c
         WHERE c.tree_size > COALESCE((SELECT max(j.tree_size) FROM log_upload_jobs j WHERE j.space = c.log_id), 0)
       ON CONFLICT (space, tree_size) DO NOTHING`,
      [],
    )
    return r.rowCount ?? 0
  }

  /** Largest tree size ever queued for `space` (0: none). */
  async latestTreeSize(space: string): Promise<number> {
    const r = await this.query<{ t: string | null }>('SELECT max(tree_size)::text AS t FROM log_upload_jobs WHERE space = $1', [space])
    return Number(r.rows[0]?.t ?? 0)
  }

  /**
   * Claims and returns the groups to upload now: for each log whose oldest pending job is due at
   * `now` (Unix ms) and not claimed by a live claim, its `perLog` oldest pending jobs, oldest first;
   * at most `maxLogs` logs, the longest waiting first. The rows stay claimed by this instance
   * (renewed) until {@link markDone} or {@link markFailed}.
   * @throws DatabaseUnavailableError
   */
  async dueGroups(now: number, perLog: number, maxLogs: number): Promise<UploadJob[][]> {
    if (this.closed) return []
    const groups = await this.transaction(async (c) => {
      // Each due log's head row, locked; heads another instance is claiming right now are skipped.
      const heads = await c.query<{ space: string }>(
        `SELECT j.space FROM log_upload_jobs j
           JOIN (SELECT DISTINCT ON (space) space, tree_size FROM log_upload_jobs WHERE done_at IS NULL ORDER BY space, tree_size) h
             ON h.space = j.space AND h.tree_size = j.tree_size
         WHERE j.done_at IS NULL AND j.next_at <= $1 AND (j.claim_until IS NULL OR j.claim_until <= now())
         ORDER BY j.next_at, j.space LIMIT $2
         FOR UPDATE OF j SKIP LOCKED`,
        [now, maxLogs],
      )
      const out: (UploadJob & { bytes: number })[][] = []
      for (const { space } of heads.rows) {
        const r = await c.query<JobRow>(
          `UPDATE log_upload_jobs SET claim_holder = $3, claim_until = now() + $4 * interval '1 millisecond'
           WHERE space = $1 AND tree_size IN (SELECT tree_size FROM log_upload_jobs WHERE space = $1 AND done_at IS NULL ORDER BY tree_size LIMIT $2)
           RETURNING space, tree_size::text, root, car_cid, bytes::text, attempts, next_at::text`,
          [space, perLog, this.holder, this.claimMs],
        )
        out.push(r.rows.map(toJob).sort((a, b) => a.treeSize - b.treeSize))
      }
      return out
    })
    for (const g of groups) this.claimed.add(g[0]!.space)
    this.armRenewal()
    return groups
  }

  /**
   * When the next log is due (its oldest pending job's next attempt), Unix ms; undefined when
   * nothing is pending but logs claimed by a live claim (theirs come back when the claim ends).
   */
  async nextDue(): Promise<number | undefined> {
    const r = await this.query<{ t: string | null }>(
      `SELECT min(next_at)::text AS t FROM (
         SELECT DISTINCT ON (space) next_at, claim_until FROM log_upload_jobs WHERE done_at IS NULL ORDER BY space, tree_size
       ) h WHERE claim_until IS NULL OR claim_until <= now()`,
      [],
    )
    const t = r.rows[0]?.t
    return t === null || t === undefined ? undefined : Number(t)
  }

  /**
   * Marks jobs uploaded (whoever claims them now: the upload happened) and gives up this instance's
   * claim on the log's other rows (a group trimmed by bytes), then deletes the log's done jobs older
   * than its newest `keepDone`; one transaction.
   */
  async markDone(space: string, treeSizes: number | readonly number[], now: number): Promise<void> {
    const sizes = sizesOf(treeSizes)
    this.unclaim(space)
    await this.transaction(async (c) => {
      await c.query(
        `UPDATE log_upload_jobs SET done_at = $3, error_name = NULL, error_msg = NULL, error_at = NULL, claim_holder = NULL, claim_until = NULL
         WHERE space = $1 AND tree_size = ANY($2::bigint[])`,
        [space, sizes, now],
      )
      await c.query('UPDATE log_upload_jobs SET claim_holder = NULL, claim_until = NULL WHERE space = $1 AND claim_holder = $2 AND done_at IS NULL', [space, this.holder])
      await c.query(
        `DELETE FROM log_upload_jobs WHERE space = $1 AND done_at IS NOT NULL AND tree_size <
           (SELECT tree_size FROM log_upload_jobs WHERE space = $1 AND done_at IS NOT NULL ORDER BY tree_size DESC LIMIT 1 OFFSET $2)`,
        [space, this.keepDone - 1],
      )
    })
  }

  /**
   * Records a failed attempt of jobs still claimed by this instance and when to try again (Unix ms),
   * and gives up this instance's claim on every row of the log; one transaction.
   */
  async markFailed(space: string, treeSizes: number | readonly number[], error: UploadError, nextAt: number): Promise<void> {
    const sizes = sizesOf(treeSizes)
    this.unclaim(space)
    await this.transaction(async (c) => {
      await c.query(
        `UPDATE log_upload_jobs SET attempts = attempts + 1, next_at = $3, error_name = $4, error_msg = $5, error_at = $6
         WHERE space = $1 AND tree_size = ANY($2::bigint[]) AND done_at IS NULL AND claim_holder = $7`,
        [space, sizes, nextAt, error.name, error.message, error.at, this.holder],
      )
      await c.query('UPDATE log_upload_jobs SET claim_holder = NULL, claim_until = NULL WHERE space = $1 AND claim_holder = $2 AND done_at IS NULL', [space, this.holder])
    })
  }

  /** Moves every pending job's next attempt to at most `latest` (Unix ms). */
  async clampNextAt(latest: number): Promise<void> {
    await this.query('UPDATE log_upload_jobs SET next_at = $1 WHERE done_at IS NULL AND next_at > $1', [latest])
  }

  /** Checkpoint CARs of `space` not yet uploaded (its backlog; one indexed count). */
  async pendingCount(space: string): Promise<number> {
    const r = await this.query<{ n: string }>('SELECT count(*)::text AS n FROM log_upload_jobs WHERE space = $1 AND done_at IS NULL', [space])
    return Number(r.rows[0]!.n)
  }

  /** Makes every pending job of `space` due at `now` (after a new delegation arrived). */
  async wake(space: string, now: number): Promise<void> {
    await this.query('UPDATE log_upload_jobs SET next_at = $2 WHERE space = $1 AND done_at IS NULL AND next_at > $2', [space, now])
  }

  /** Keeps `delegation` as the log's delegation for uploads (the most recently received wins). Returns true when it replaced the kept one. */
  async setDelegation(space: string, delegation: API.Delegation): Promise<boolean> {
    const cid = delegation.cid.toString()
    const current = await this.query<{ cid: string }>('SELECT cid FROM log_upload_delegations WHERE space = $1', [space])
    if (current.rows[0]?.cid === cid) return false
    const archive = await Delegation.archive(delegation)
    if (archive.error) throw archive.error
    const r = await this.query(
      `INSERT INTO log_upload_delegations (space, cid, expiration, archive) VALUES ($1, $2, $3, $4)
       ON CONFLICT (space) DO UPDATE SET cid = EXCLUDED.cid, expiration = EXCLUDED.expiration, archive = EXCLUDED.archive
       WHERE log_upload_delegations.cid <> EXCLUDED.cid`,
      [space, cid, expiryOf(delegation), Buffer.from(archive.ok)],
    )
    return r.rowCount! > 0
  }

  /** The kept delegation of `space`, if any. */
  async delegation(space: string): Promise<API.Delegation | undefined> {
    const r = await this.query<{ archive: Buffer }>('SELECT archive FROM log_upload_delegations WHERE space = $1', [space])
    const row = r.rows[0]
    if (!row) return undefined
    const d = await Delegation.extract(new Uint8Array(row.archive))
    if (d.error) throw d.error
    return d.ok
  }

  /** Every space with at least one queued job. */
  async spaces(): Promise<string[]> {
    return (await this.query<{ space: string }>('SELECT DISTINCT space FROM log_upload_jobs ORDER BY space', [])).rows.map((r) => r.space)
  }

  /** The upload status of `space` (as UploadQueue.status), undefined when nothing was ever queued for it. */
  async status(space: string): Promise<UploadStatus | undefined> {
    const r = await this.query<{ latest: string | null; pending: string; head_next: string | null; uploaded: string | null; latest_root: string | null; error_name: string | null; error_msg: string | null; error_at: string | null }>(
      `WITH j AS (SELECT * FROM log_upload_jobs WHERE space = $1),
            head AS (SELECT tree_size, next_at FROM j WHERE done_at IS NULL ORDER BY tree_size LIMIT 1),
            failing AS (SELECT error_name, error_msg, error_at FROM j WHERE done_at IS NULL AND error_name IS NOT NULL ORDER BY tree_size LIMIT 1)
       SELECT (SELECT max(tree_size) FROM j)::text AS latest,
              (SELECT count(*) FROM j WHERE done_at IS NULL)::text AS pending,
              (SELECT next_at FROM head)::text AS head_next,
              (SELECT max(tree_size) FROM j WHERE done_at IS NOT NULL AND tree_size < COALESCE((SELECT tree_size FROM head), 9223372036854775807))::text AS uploaded,
              (SELECT root FROM j WHERE done_at IS NOT NULL ORDER BY tree_size DESC LIMIT 1) AS latest_root,
              f.error_name, f.error_msg, f.error_at::text
       FROM (SELECT 1) one LEFT JOIN failing f ON true`,
      [space],
    )
    const a = r.rows[0]!
    if (a.latest === null) return undefined
    const latest = Number(a.latest)
    const pending = Number(a.pending)
    const uploadedTreeSize = Number(a.uploaded ?? 0)
    const status: UploadStatus = {
      state: pending === 0 ? 'uploaded' : a.error_name !== null ? 'failing' : 'pending',
      uploadedTreeSize,
      latestTreeSize: latest,
      lagEntries: latest - uploadedTreeSize,
      pendingCheckpoints: pending,
    }
    if (a.latest_root !== null) status.latestRoot = a.latest_root
    if (a.error_name !== null) status.error = { name: a.error_name, message: a.error_msg ?? '', at: Number(a.error_at) }
    if (a.head_next !== null) status.nextAttemptAt = Number(a.head_next)
    return status
  }

  /** Totals over every log, for the metrics (as UploadQueue.totals): one scan of the pending rows and one lookup per log with pending jobs. */
  async totals(): Promise<{ pendingCheckpoints: number; lagEntries: number; failingLogs: number }> {
    const r = await this.query<{ pending: string; lag: string; failing: string }>(
      `SELECT COALESCE(sum(p.pending), 0)::text AS pending,
              COALESCE(sum(p.latest - COALESCE((SELECT max(d.tree_size) FROM log_upload_jobs d WHERE d.space = p.space AND d.done_at IS NOT NULL AND d.tree_size < p.first_pending), 0)), 0)::text AS lag,
              count(*) FILTER (WHERE p.failing > 0)::text AS failing
       FROM (SELECT space, count(*) AS pending, min(tree_size) AS first_pending, max(tree_size) AS latest, count(error_name) AS failing
             FROM log_upload_jobs WHERE done_at IS NULL GROUP BY space) p`,
      [],
    )
    const row = r.rows[0]!
    return { pendingCheckpoints: Number(row.pending), lagEntries: Number(row.lag), failingLogs: Number(row.failing) }
  }

  /** The length of the job's CAR, bytes (recorded when it was queued). */
  async carSize(job: UploadJob): Promise<number> {
    const bytes = (job as { bytes?: number }).bytes
    if (bytes !== undefined) return bytes
    return (await this.readCar(job)).length
  }

  /** The job's CAR from `log_cars`. @throws Error when the row is gone; DatabaseUnavailableError */
  async readCar(job: UploadJob): Promise<Uint8Array> {
    const r = await this.query<{ car: Buffer }>('SELECT car FROM log_cars WHERE log_id = $1 AND tree_size = $2', [job.space, job.treeSize])
    const row = r.rows[0]
    if (!row) throw new Error(`no such row in log_cars`)
    return new Uint8Array(row.car.buffer, row.car.byteOffset, row.car.byteLength)
  }

  /** Always true until {@link close}: the pool is the caller's. */
  get isOpen(): boolean {
    return !this.closed
  }

  /**
   * Stops renewing claims and ends this instance's remaining claims (another instance may take
   * those rows at once). Call after the uploader's close. Idempotent; never throws.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.renewer)
    this.renewer = undefined
    this.claimed.clear()
    await this.pool.query('UPDATE log_upload_jobs SET claim_holder = NULL, claim_until = NULL WHERE claim_holder = $1 AND done_at IS NULL', [this.holder]).catch(() => {})
  }

  /** Stops renewing this instance's claim on `space` (one group per log in flight: all of it ends with the attempt). */
  private unclaim(space: string): void {
    this.claimed.delete(space)
    if (this.claimed.size === 0) {
      clearInterval(this.renewer)
      this.renewer = undefined
    }
  }

  /** Renews this instance's claims every third of claimMs while it holds any. */
  private armRenewal(): void {
    if (this.renewer || this.claimed.size === 0 || this.o.renew === false || this.closed) return
    this.renewer = setInterval(() => {
      const spaces = [...this.claimed]
      if (spaces.length === 0) return
      this.pool
        .query(`UPDATE log_upload_jobs SET claim_until = now() + $3 * interval '1 millisecond' WHERE space = ANY($1::text[]) AND claim_holder = $2 AND done_at IS NULL`, [spaces, this.holder, this.claimMs])
        .catch(() => {}) // the database down: the claims may expire and pass to another instance (harmless: uploads are idempotent)
    }, Math.max(1, Math.floor(this.claimMs / 3)))
    this.renewer.unref()
  }

  private async query<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params)
    } catch (err) {
      throw namedDatabaseError(err)
    }
  }

  private transaction<T>(f: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, f)
  }
}
