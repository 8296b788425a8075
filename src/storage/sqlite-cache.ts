/**
 * The page cache of each SQLite database the service opens (the replay guard and revocations in
 * `ucan.db`, the lookup index `lookup.db`, the upload queue `uploads.sqlite`, each open log's CAR
 * index `cars/<space>/index.sqlite`).
 *
 * better-sqlite3 builds SQLite with a 16 MB page cache per connection (SQLITE_DEFAULT_CACHE_SIZE
 * = -16000): native memory, outside V8's heap and its `--max-old-space-size` cap, that fills as a
 * file grows (the replay guard's table grows by every append until its invocations expire) and is
 * not given back. The files are read through the kernel's page cache anyway, so each store bounds
 * its connections' caches to `--sqlite-cache-bytes` instead (issue 15, found by the soak).
 */
import type Database from 'better-sqlite3'

/** Default page cache of each SQLite connection, bytes (`--sqlite-cache-bytes`): 2 MiB. */
export const DEFAULT_SQLITE_CACHE_BYTES = 2 * 2 ** 20
/** Smallest accepted page cache, bytes (64 KiB). */
export const MIN_SQLITE_CACHE_BYTES = 64 * 1024

/**
 * Bounds `db`'s page cache to `bytes` (PRAGMA cache_size = −⌈bytes / 1024⌉, a size in KiB).
 * @param bytes integer ≥ {@link MIN_SQLITE_CACHE_BYTES}; default {@link DEFAULT_SQLITE_CACHE_BYTES}.
 * @throws RangeError for a smaller or non-integer `bytes` (nothing is changed then).
 */
export function boundSqliteCache(db: Database.Database, bytes: number = DEFAULT_SQLITE_CACHE_BYTES): void {
  if (!Number.isSafeInteger(bytes) || bytes < MIN_SQLITE_CACHE_BYTES) throw new RangeError(`SQLite cache bytes must be an integer ≥ ${MIN_SQLITE_CACHE_BYTES}`)
  db.pragma(`cache_size = ${-Math.ceil(bytes / 1024)}`)
}

/** The page cache bound in effect on `db`'s connection, bytes (read back from SQLite: −KiB, or pages × page size). */
export function sqliteCacheBytes(db: Database.Database): number {
  const n = db.pragma('cache_size', { simple: true }) as number
  return n < 0 ? -n * 1024 : n * (db.pragma('page_size', { simple: true }) as number)
}
