/**
 * Moving the logs of an embedded-default data directory (docs/storage.md, "The data directory")
 * into PostgreSQL (docs/storage.md, "Moving a data directory into PostgreSQL"; issue 14 item 4):
 * a space log's files (`logs/<spaceDID>/`: checkpoint, tiles, bundles, `.state/tree`) and its
 * archive (`cars/<spaceDID>/`: every CAR and the directory entries of `index.sqlite`), and the
 * revocation log (`revocations/`), each log in ONE transaction fenced by the log's
 * {@link WriteLease}: all of a log or nothing of it.
 *
 * - A log the database does not hold (or holds empty) is written.
 * - A log the database holds with the same files and CARs is left alone (`unchanged`): a rerun is
 *   idempotent.
 * - A log the database holds with anything different is refused ({@link LogConflictError}) and
 *   nothing of it is written; the other logs go on.
 * - The data directory must be stopped: one a `ucanlog serve` runs on ({@link checkStopped}), or a
 *   CAR index still locked by one, is refused ({@link DataDirInUseError}). The data directory is only read, never changed.
 */
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type pg from 'pg'
import { INDEX_FILE } from '../car-packer.js'
import { TEMP_PREFIX } from '../durable.js'
import { checkRelativePath } from '../file-store.js'
import { checkLogId } from '../local-backend.js'
import { namedDatabaseError } from './errors.js'
import { type LeaseOptions, WriteLease } from './lease.js'
import { serviceLogId } from './pg-backend.js'
import { asBuffer } from './pg-files.js'

/** The database holds this log with different content; nothing of it was written. */
export class LogConflictError extends Error {
  override name = 'LogConflict'
}

/** The data directory is in use by a running `ucanlog serve` (see {@link checkStopped}; or a log's CAR index is locked); nothing (of that log) was written. */
export class DataDirInUseError extends Error {
  override name = 'DataDirInUse'
}

/** One CAR of a log's archive, as `index.sqlite` lists it. */
interface LocalCar {
  treeSize: number
  root: string
  carCid: string
  /** The CAR file's absolute path (read when it is written, one at a time). */
  file: string
  /** Its length, bytes. */
  bytes: number
  blocks: number
}

/** One directory entry of the newest root (`index.sqlite` `entries`). */
interface LocalEntry {
  dir: string
  name: string
  isDir: boolean
  cid: Buffer
  tsize: number
}

/** Everything of one log read from the data directory (its files in memory; its CARs by path, read one at a time when written). */
export interface LocalLog {
  /** `log_logs.log_id`: the space DID, or `service:revocations`. */
  logId: string
  kind: 'space' | 'service'
  /** Every file by store path, in path order. */
  files: Map<string, Buffer>
  cars: LocalCar[]
  entries: LocalEntry[]
}

/** What happened to one log. */
export interface ImportResult {
  logId: string
  /** `copied`: written now; `unchanged`: the database already held the same content. */
  outcome: 'copied' | 'unchanged'
  files: number
  cars: number
  /** Bytes of files and CARs read from the data directory. */
  bytes: number
}

/** Every regular file under `root` by store path (temporary `.tmp-` files skipped); empty when `root` is missing. */
async function readTree(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  const walk = async (rel: string): Promise<void> => {
    let names
    try {
      names = await readdir(join(root, rel), { withFileTypes: true })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && rel === '') return
      throw err
    }
    for (const d of names.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (d.name.startsWith(TEMP_PREFIX)) continue
      const path = rel === '' ? d.name : `${rel}/${d.name}`
      if (d.isDirectory()) await walk(path)
      else if (d.isFile()) out.set(checkRelativePath(path), await readFile(join(root, path)))
    }
  }
  await walk('')
  return out
}

/**
 * Reads space log `id` of data directory `dataDir`: its files and its archive.
 * @throws InvalidLogIdError, DataDirInUseError (its CAR index is locked by a running server), the file system's errors.
 */
export async function readLocalSpaceLog(dataDir: string, id: string): Promise<LocalLog> {
  checkLogId(id)
  const files = await readTree(join(dataDir, 'logs', id))
  const carsDir = join(dataDir, 'cars', id)
  const cars: LocalCar[] = []
  const entries: LocalEntry[] = []
  let db: Database.Database
  try {
    db = new Database(join(carsDir, INDEX_FILE), { readonly: true, fileMustExist: true, timeout: 0 })
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_CANTOPEN') return { logId: id, kind: 'space', files, cars, entries }
    throw err
  }
  try {
    let packs: { tree_size: number; root: string; car_cid: string; file: string; bytes: number; blocks: number }[]
    let rows: { dir: string; name: string; is_dir: number; cid: Buffer; tsize: number }[]
    try {
      packs = db.prepare('SELECT tree_size, root, car_cid, file, bytes, blocks FROM packs ORDER BY tree_size').all() as typeof packs
      rows = db.prepare('SELECT dir, name, is_dir, cid, tsize FROM entries ORDER BY dir, name').all() as typeof rows
    } catch (err) {
      const code = (err as { code?: string }).code ?? ''
      if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
        throw new DataDirInUseError(`log ${id}: ${join(carsDir, INDEX_FILE)} is locked: stop \`ucanlog serve\` on this data directory first; nothing of this log was written`)
      }
      throw err
    }
    for (const p of packs) cars.push({ treeSize: p.tree_size, root: p.root, carCid: p.car_cid, file: join(carsDir, p.file), bytes: p.bytes, blocks: p.blocks })
    for (const r of rows) entries.push({ dir: r.dir, name: r.name, isDir: r.is_dir !== 0, cid: r.cid, tsize: r.tsize })
  } finally {
    db.close()
  }
  return { logId: id, kind: 'space', files, cars, entries }
}

/** Reads service log `name` (`<data>/<name>/`, e.g. the revocation log): its files; service logs have no CARs. */
export async function readLocalServiceLog(dataDir: string, name: string): Promise<LocalLog> {
  const logId = serviceLogId(name)
  return { logId, kind: 'service', files: await readTree(join(dataDir, name)), cars: [], entries: [] }
}

/**
 * Refuses a data directory that a `ucanlog serve` is running on: `ucan.db-wal` (or `witness.db-wal`)
 * exists while a server has the database open and is removed by its clean stop (SQLite deletes the
 * WAL when its last connection closes). Left behind by a crash too: then start and stop the server
 * once. Each log's CAR index is checked again when read (a running server locks it).
 * @throws DataDirInUseError
 */
export async function checkStopped(dataDir: string): Promise<void> {
  for (const name of ['ucan.db-wal', 'witness.db-wal']) {
    const there = await stat(join(dataDir, name)).then(
      () => true,
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
    )
    if (there) throw new DataDirInUseError(`${join(dataDir, name)} exists: \`ucanlog serve\` is running on this data directory or did not stop cleanly; stop it (or start and stop it once) and run again; nothing written`)
  }
}

/** Space log ids of data directory `dataDir` (`logs/<did:key>/`), in byte order. */
export async function listLocalSpaceLogs(dataDir: string): Promise<string[]> {
  try {
    const names = await readdir(join(dataDir, 'logs'), { withFileTypes: true })
    return names
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .filter((n) => {
        try {
          return checkLogId(n) === n
        } catch {
          return false
        }
      })
      .sort()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
}

function sizeOf(log: LocalLog): number {
  let n = 0
  for (const b of log.files.values()) n += b.length
  for (const c of log.cars) n += c.bytes
  return n
}

/**
 * Writes `log` into the database in one transaction under the log's write lease (waiting for a
 * running instance's lease as `PgBackend.open` does), or finds it already there with the same
 * files and CARs (`unchanged`).
 * @throws LogConflictError (the database holds the log with different files or CARs: nothing
 *   written), LeaseHeldError, LeaseLostError, DatabaseUnavailableError.
 */
export async function importLog(pool: pg.Pool, log: LocalLog, lease: LeaseOptions = {}): Promise<ImportResult> {
  const base = { logId: log.logId, files: log.files.size, cars: log.cars.length, bytes: sizeOf(log) }
  try {
    await pool.query('INSERT INTO log_logs (log_id, kind) VALUES ($1, $2) ON CONFLICT (log_id) DO NOTHING', [log.logId, log.kind])
    const kind = await pool.query<{ kind: string }>('SELECT kind FROM log_logs WHERE log_id = $1', [log.logId])
    if (kind.rows[0]?.kind !== log.kind) throw new LogConflictError(`log ${log.logId} is a ${kind.rows[0]?.kind} log in the database, a ${log.kind} log here; nothing written`)
  } catch (err) {
    throw namedDatabaseError(err)
  }
  const held = await WriteLease.acquire(pool, log.logId, lease)
  try {
    const outcome = await held.transaction(async (c) => {
      const have = await c.query<{ path: string; bytes: Buffer }>('SELECT path, bytes FROM log_files WHERE log_id = $1', [log.logId])
      const haveCars = await c.query<{ tree_size: string; car_cid: string }>('SELECT tree_size::text AS tree_size, car_cid FROM log_cars WHERE log_id = $1 ORDER BY log_cars.tree_size', [log.logId])
      if (have.rowCount! > 0 || haveCars.rowCount! > 0) {
        const diff = difference(log, have.rows, haveCars.rows)
        if (diff) throw new LogConflictError(`log ${log.logId} is already in the database with different content (${diff}); nothing of it written`)
        return 'unchanged' as const
      }
      // Statements of at most INSERT_BATCH_BYTES of files (each under the pool's statement timeout), one CAR each.
      for (const paths of batches(log.files)) {
        await c.query('INSERT INTO log_files (log_id, path, bytes) SELECT $1, p, b FROM unnest($2::text[], $3::bytea[]) AS t (p, b)', [log.logId, paths, paths.map((p) => log.files.get(p)!)])
      }
      for (const car of log.cars) {
        const bytes = await readFile(car.file)
        if (bytes.length !== car.bytes) throw new Error(`${car.file} is ${bytes.length} bytes, its index says ${car.bytes}; nothing of log ${log.logId} written`)
        await c.query('INSERT INTO log_cars (log_id, tree_size, root, car_cid, car, blocks) VALUES ($1, $2, $3, $4, $5, $6)', [log.logId, car.treeSize, car.root, car.carCid, asBuffer(bytes), car.blocks])
      }
      const e = log.entries
      if (e.length > 0) {
        await c.query(
          `INSERT INTO log_car_entries (log_id, dir, name, is_dir, cid, tsize)
             SELECT $1, d, n, i, c, t FROM unnest($2::text[], $3::text[], $4::boolean[], $5::bytea[], $6::bigint[]) AS x (d, n, i, c, t)`,
          [log.logId, e.map((x) => x.dir), e.map((x) => x.name), e.map((x) => x.isDir), e.map((x) => x.cid), e.map((x) => x.tsize)],
        )
      }
      return 'copied' as const
    })
    return { ...base, outcome }
  } finally {
    await held.release()
  }
}

/** Most bytes of files per INSERT statement of {@link importLog}. */
export const INSERT_BATCH_BYTES = 8 * 1024 * 1024

/** The paths of `files` in order, in groups of at most INSERT_BATCH_BYTES (a bigger file alone). */
function* batches(files: Map<string, Buffer>): Generator<string[]> {
  let group: string[] = []
  let size = 0
  for (const [path, bytes] of files) {
    if (group.length > 0 && size + bytes.length > INSERT_BATCH_BYTES) {
      yield group
      group = []
      size = 0
    }
    group.push(path)
    size += bytes.length
  }
  if (group.length > 0) yield group
}

/** A short description of the first difference between `log` and the database's rows, or undefined when they hold the same. */
function difference(log: LocalLog, files: { path: string; bytes: Buffer }[], cars: { tree_size: string; car_cid: string }[]): string | undefined {
  if (files.length !== log.files.size) return `${files.length} files there, ${log.files.size} here`
  for (const f of files) {
    const mine = log.files.get(f.path)
    if (!mine) return `file ${f.path} only there`
    if (!mine.equals(f.bytes)) return `file ${f.path} differs`
  }
  if (cars.length !== log.cars.length) return `${cars.length} CARs there, ${log.cars.length} here`
  for (let i = 0; i < cars.length; i++) {
    if (Number(cars[i]!.tree_size) !== log.cars[i]!.treeSize || cars[i]!.car_cid !== log.cars[i]!.carCid) return `CAR at tree size ${cars[i]!.tree_size} differs`
  }
  return undefined
}
