/**
 * A failed write of the data directory (issue 15 item 2): the error codes that mean the storage
 * itself failed a write or fsync, rather than ran out of room (storage-full.ts). Imports nothing:
 * the log service and the UCAN handlers (the replay guard's and the revocation store's SQLite
 * databases) share this one list.
 */

/**
 * Codes of a failed write or fsync: `EIO` (the device reported an I/O error), `EROFS` (the
 * filesystem went read-only, as ext4 does after a journal error), and better-sqlite3's
 * `SQLITE_IOERR` and its extended codes (`SQLITE_IOERR_FSYNC`, `SQLITE_IOERR_WRITE`, …).
 */
export const STORAGE_FAILED_CODES: readonly string[] = ['EIO', 'EROFS', 'SQLITE_IOERR']

/** The code of {@link STORAGE_FAILED_CODES} (an `SQLITE_IOERR_*` counts as SQLITE_IOERR) that `err` or its `cause` (one level) carries; undefined if none. */
export function storageFailedCode(err: unknown): string | undefined {
  return [err, (err as { cause?: unknown } | null | undefined)?.cause]
    .map((e) => (e as { code?: unknown } | null | undefined)?.code)
    .find((c): c is string => typeof c === 'string' && (STORAGE_FAILED_CODES.includes(c) || c.startsWith('SQLITE_IOERR_')))
}
