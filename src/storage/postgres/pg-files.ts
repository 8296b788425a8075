/**
 * The files of one log in PostgreSQL's `log_files` table (log id, path, bytes): the
 * {@link LogFiles} contract of src/log/storage.ts, with the same paths and refusals as the file
 * store (checkRelativePath: InvalidPathError before the database is touched).
 *
 * - `write` is one transaction, fenced by the log's {@link WriteLease}: all of its files or none
 *   become visible (stronger than the contract's per-file atomicity), durable once resolved (the
 *   server's commit), refused with LeaseLostError once another instance holds the log.
 * - Reads see committed files only, never a mix; a path with no row (a "directory", a path through
 *   a file) is not found.
 * - Writes of one batch lock their rows in path order, so concurrent batches never deadlock.
 */
import type pg from 'pg'
import { checkedBatch, checkRelativePath } from '../file-store.js'
import { namedDatabaseError } from './errors.js'
import type { WriteLease } from './lease.js'

/** A write through a read-only view of a log ({@link PgFiles} opened without a lease); nothing was written. */
export class ReadOnlyFilesError extends Error {
  override name = 'ReadOnlyFiles'
}

/** Bytes as a Buffer viewing the same memory (what node-postgres sends as bytea). */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

/** A fresh Uint8Array over a bytea value node-postgres returned (a Buffer of its own). */
function asBytes(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

/** One log's files in PostgreSQL; see the module comment. */
export class PgFiles {
  /**
   * @param lease the log's write lease; without one, this is a read-only view (writes →
   *   ReadOnlyFilesError).
   */
  constructor(
    private readonly pool: pg.Pool,
    readonly logId: string,
    private readonly lease?: WriteLease,
  ) {}

  /** The file's bytes, or undefined when there is none. @throws InvalidPathError, DatabaseUnavailableError */
  async read(path: string): Promise<Uint8Array | undefined> {
    checkRelativePath(path)
    try {
      const r = await this.pool.query<{ bytes: Buffer }>('SELECT bytes FROM log_files WHERE log_id = $1 AND path = $2', [this.logId, path])
      return r.rows[0] ? asBytes(r.rows[0].bytes) : undefined
    } catch (err) {
      throw namedDatabaseError(err)
    }
  }

  /** Whether a file is at `path`. @throws InvalidPathError, DatabaseUnavailableError */
  async exists(path: string): Promise<boolean> {
    checkRelativePath(path)
    try {
      return (await this.pool.query('SELECT 1 FROM log_files WHERE log_id = $1 AND path = $2', [this.logId, path])).rowCount! > 0
    } catch (err) {
      throw namedDatabaseError(err)
    }
  }

  /**
   * Writes every file in one fenced transaction (a path repeated: the last bytes win). All paths
   * are validated first. @throws InvalidPathError, ReadOnlyFilesError, LeaseLostError, DatabaseUnavailableError
   */
  async write(files: Iterable<[string, Uint8Array]>): Promise<void> {
    const batch = checkedBatch(files)
    const lease = this.writable()
    if (batch.size === 0) return
    const paths = [...batch.keys()].sort()
    // Copied now: the caller may change its buffers once this resolves (or even before it settles).
    const values = paths.map((p) => Buffer.from(batch.get(p)!))
    await lease.transaction(async (c) => {
      await c.query(
        `INSERT INTO log_files (log_id, path, bytes) SELECT $1, p, b FROM unnest($2::text[], $3::bytea[]) AS t (p, b)
         ON CONFLICT (log_id, path) DO UPDATE SET bytes = EXCLUDED.bytes`,
        [this.logId, paths, values],
      )
    })
  }

  /** Removes files (missing ones are ignored) in one fenced transaction. @throws as {@link write} */
  async remove(paths: Iterable<string>): Promise<void> {
    const list = [...new Set(paths)].map(checkRelativePath).sort()
    const lease = this.writable()
    if (list.length === 0) return
    await lease.transaction(async (c) => {
      await c.query('DELETE FROM log_files WHERE log_id = $1 AND path = ANY($2::text[])', [this.logId, list])
    })
  }

  private writable(): WriteLease {
    if (!this.lease) throw new ReadOnlyFilesError(`log ${this.logId} is open for reading only here; nothing written`)
    return this.lease
  }
}
