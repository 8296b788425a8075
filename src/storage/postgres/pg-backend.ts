/**
 * Every log of the service in PostgreSQL (issue 14; docs/storage.md, PostgreSQL): the log engine's
 * {@link LogBackend} contract (src/log/storage.ts) over the tables of schema.ts, for several
 * `ucanlog serve` instances on one database.
 *
 * - `open` (the engine opens a log to write it) creates the log's row when asked and takes the
 *   log's write lease ({@link WriteLease}: a fencing token checked by every write transaction);
 *   the archive's `close` (the log's close) releases it. While another instance holds a log's
 *   lease, `open` waits up to the lease's wait and then refuses with LeaseHeldError.
 * - `files` is a read-only view (no lease): any instance serves any log's checkpoint, tiles and
 *   bundles from the database.
 * - `serviceLog(name)` (the revocation log) is leased the same way, until its user lets it go
 *   ({@link PgBackend.releaseServiceLog}, when idle) or {@link PgBackend.close}: leases follow use,
 *   so several instances share one database.
 * - `exists`/`list` never create anything; space logs only (service logs are never listed).
 *
 * The pool is the caller's (src/server/database.ts makes it); this class never ends it.
 */
import type pg from 'pg'
import { checkLogId, InvalidLogIdError } from '../local-backend.js'
import { type ShardCache, sharedShardCache } from '../unixfs.js'
import { namedDatabaseError } from './errors.js'
import { defaultHolder, type LeaseOptions, liveHolder, WriteLease } from './lease.js'
import { PgArchive, type PgArchiveUploads } from './pg-archive.js'
import { PgFiles } from './pg-files.js'

/** Options of {@link PgBackend}. */
export interface PgBackendOptions extends Omit<LeaseOptions, 'holder'> {
  /** This instance's name in `log_leases.holder`; default host/pid/random. */
  holder?: string
  /** HAMT shard cache of the archives' CAR encoding; default the process's shared one. */
  shards?: ShardCache
  /** Uploads to Storacha on: every pack also queues its CAR (pg-upload-queue.ts), in its own transaction. Default off. */
  uploads?: PgArchiveUploads
}

/** The id of a service log (`service:<name>`) in `log_logs`: never a DID, so never a space's. */
export function serviceLogId(name: string): string {
  if (!/^[a-z]+$/.test(name)) throw new InvalidLogIdError(`not a service log name: ${JSON.stringify(name.slice(0, 80))}`)
  return `service:${name}`
}

/** The PostgreSQL `LogBackend`; see the module comment. */
export class PgBackend {
  readonly holder: string
  /** Leases held for service logs (released by close). */
  private readonly serviceLeases = new Map<string, WriteLease>()
  private readonly lease: LeaseOptions

  constructor(
    private readonly pool: pg.Pool,
    private readonly o: PgBackendOptions = {},
  ) {
    this.holder = o.holder ?? defaultHolder()
    this.lease = { ...o, holder: this.holder }
  }

  /** True when a space log with this id exists. @throws DatabaseUnavailableError */
  async exists(id: string): Promise<boolean> {
    if (!isLogId(id)) return false
    return (await this.query("SELECT 1 FROM log_logs WHERE log_id = $1 AND kind = 'space'", [id])).rowCount! > 0
  }

  /**
   * Opens a space log for writing: its row (created with `create`), its write lease, its files and
   * archive; undefined when it does not exist and `create` is not set.
   * @throws InvalidLogIdError, LeaseHeldError, DatabaseUnavailableError
   */
  async open(id: string, create: boolean): Promise<{ files: PgFiles; archive: PgArchive } | undefined> {
    checkLogId(id)
    if (create) await this.query("INSERT INTO log_logs (log_id, kind) VALUES ($1, 'space') ON CONFLICT (log_id) DO NOTHING", [id])
    else if (!(await this.exists(id))) return undefined
    const lease = await WriteLease.acquire(this.pool, id, this.lease)
    try {
      const archive = await PgArchive.open(this.pool, id, lease, this.o.shards ?? sharedShardCache(), this.o.uploads)
      return { files: new PgFiles(this.pool, id, lease), archive }
    } catch (err) {
      await lease.release()
      throw err
    }
  }

  /** Read-only files of an existing space log (no lease); undefined when it does not exist. @throws DatabaseUnavailableError */
  async files(id: string): Promise<PgFiles | undefined> {
    return (await this.exists(id)) ? new PgFiles(this.pool, id) : undefined
  }

  /** Where a log's file is, for operators' messages. */
  location(id: string, path: string): string {
    return `PostgreSQL log_files (log_id ${id}, path ${path})`
  }

  /** Ids of every space log, in byte order. @throws DatabaseUnavailableError */
  async list(): Promise<string[]> {
    return (await this.query<{ log_id: string }>(`SELECT log_id FROM log_logs WHERE kind = 'space' ORDER BY log_id COLLATE "C"`, [])).rows.map((r) => r.log_id)
  }

  /**
   * The files of a service log (`revocations`), created when missing and leased for this backend's
   * life (one writer on the database at a time; another instance waits for the lease).
   * @throws InvalidLogIdError unless `name` is a lowercase word; LeaseHeldError; DatabaseUnavailableError
   */
  async serviceLog(name: string): Promise<PgFiles> {
    const id = serviceLogId(name)
    await this.query("INSERT INTO log_logs (log_id, kind) VALUES ($1, 'service') ON CONFLICT (log_id) DO NOTHING", [id])
    let lease = this.serviceLeases.get(id)
    if (!lease || lease.lost) {
      lease = await WriteLease.acquire(this.pool, id, this.lease)
      this.serviceLeases.set(id, lease)
    }
    return new PgFiles(this.pool, id, lease)
  }

  /**
   * Lets the lease of service log `name` go (its files refuse writes from now on: take them again
   * with {@link serviceLog}, reading the log afresh). Idempotent.
   */
  async releaseServiceLog(name: string): Promise<void> {
    const id = serviceLogId(name)
    const lease = this.serviceLeases.get(id)
    this.serviceLeases.delete(id)
    await lease?.release()
  }

  /**
   * Another instance holding log `id`'s lease now (its name and internal URL), or undefined when
   * nobody else does (free, expired, or this instance's). @throws DatabaseUnavailableError
   */
  otherHolder(id: string): Promise<{ holder: string; url: string | undefined } | undefined> {
    return liveHolder(this.pool, id, this.holder)
  }

  /** Releases the service logs' leases (space logs release theirs when closed). Idempotent. */
  async close(): Promise<void> {
    const leases = [...this.serviceLeases.values()]
    this.serviceLeases.clear()
    await Promise.all(leases.map((l) => l.release()))
  }

  private async query<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params)
    } catch (err) {
      throw namedDatabaseError(err)
    }
  }
}

function isLogId(id: string): boolean {
  try {
    checkLogId(id)
    return true
  } catch {
    return false
  }
}
