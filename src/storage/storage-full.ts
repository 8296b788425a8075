/**
 * A full data directory (issue 15 item 1): the error codes that mean it, and the named error a
 * write refused for want of space becomes. Imports nothing: the log service (src/server) and the
 * UCAN handlers (src/ucan, for their own stores such as the replay guard) share this one list.
 */

/**
 * The error codes that mean the data directory's filesystem has no room left: `ENOSPC` (no space
 * left on the device), `EDQUOT` (disk quota exceeded), and better-sqlite3's `SQLITE_FULL` (a
 * database in the data directory could not grow). Retrying later, once space is freed, can succeed.
 */
export const STORAGE_FULL_CODES: readonly string[] = ['ENOSPC', 'EDQUOT', 'SQLITE_FULL']

/** Whether `err` (or its `cause`, one level) is the filesystem being full: a code in {@link STORAGE_FULL_CODES}. */
export function isStorageFull(err: unknown): boolean {
  return storageFullCode(err) !== undefined
}

/** The code of {@link STORAGE_FULL_CODES} that `err` (or its `cause`, one level) carries; undefined if none. */
export function storageFullCode(err: unknown): string | undefined {
  return [err, (err as { cause?: unknown } | null | undefined)?.cause]
    .map((e) => (e as { code?: unknown } | null | undefined)?.code)
    .find((c): c is string => typeof c === 'string' && STORAGE_FULL_CODES.includes(c))
}

/**
 * A write refused because the data directory's filesystem is full (issue 15 item 1). Its `name`
 * (`StorageFull`) is what the client is answered; the message names the code only (no path, no
 * stack). Nothing of the failed write is committed (durable.ts removes its temporary files; the
 * log's `.state/tree` commit point is written last).
 */
export class StorageFullError extends Error {
  override name = 'StorageFull'
  /** The system error code that was seen (one of {@link STORAGE_FULL_CODES}). */
  readonly code: string
  constructor(cause: unknown) {
    const code = storageFullCode(cause) ?? 'ENOSPC'
    super(storageFullMessage(code), { cause })
    this.code = code
  }
}

/** The message of a {@link StorageFullError} (and of the `StorageFull` receipt error) for `code`. */
export function storageFullMessage(code: string): string {
  return `the service's storage is full (${code}); retry once space is freed`
}
