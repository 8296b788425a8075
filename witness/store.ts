/**
 * Witness state: for each log origin, the latest checkpoint the witness cosigned (size, root hash
 * and the full log-signed note) and the log's verifier keys. c2sp.org/tlog-witness requires the
 * update to be a compare-and-swap on (origin, old size) that is durable before the witness replies,
 * so concurrent requests can never roll a log back.
 */
import Database from 'better-sqlite3'
import { encodeBase64, decodeHash } from '../src/tlog/encoding.js'
import { EMPTY_ROOT } from '../src/tlog/hash.js'
import { ed25519Verifier, parseVerifierKey } from '../src/tlog/note.js'

/** A value or a promise of it: stores may be synchronous (SQLite) or asynchronous. */
export type Awaitable<T> = T | Promise<T>

/**
 * One log the witness knows.
 * - `treeSize`: entries in the latest cosigned checkpoint, 0 before the first (then `rootHash` is
 *   SHA-256(""), the empty tree).
 * - `rootHash`: 32-byte RFC 6962 root of that tree.
 * - `checkpoint`: the log-signed checkpoint note last accepted, exactly as received (evidence a
 *   log signed it), or null before the first.
 * - `keys`: the log's Ed25519 (type 0x01) vkeys. A log with no keys is disabled: the witness
 *   answers as if it did not know it (logs are never deleted, so a re-added log cannot be shown a
 *   split view).
 */
export interface WitnessLog {
  origin: string
  treeSize: number
  rootHash: Uint8Array
  checkpoint: string | null
  keys: string[]
}

/**
 * Persistent witness state. Guarantees every implementation must give:
 * - Durable: once a mutating call has returned (or its promise resolved), the change survives a
 *   crash or restart.
 * - Atomic compare-and-swap: `compareAndSwap` changes the log only if its stored size still equals
 *   `oldSize` at the moment of the write, and reports whether it did; concurrent callers with the
 *   same `oldSize` see exactly one `true`.
 * - Monotonic: a log's size never decreases; `compareAndSwap` with newSize < oldSize throws
 *   RangeError.
 * - Safe to call concurrently; reads return a consistent snapshot of one log (size, root,
 *   checkpoint and keys together).
 * `getLog` returns undefined for an unknown origin; other "not found" cases are documented per
 * method.
 */
export interface WitnessStore {
  /** The log with this origin, or undefined if the witness does not know it. */
  getLog(origin: string): Awaitable<WitnessLog | undefined>
  /**
   * Atomically replaces (size, root, checkpoint) of `origin` if its size is still `oldSize`.
   * @param newSize ≥ oldSize entries. @param rootHash 32 bytes. @param checkpoint the log-signed note.
   * @returns true if the log was updated, false if the stored size was not `oldSize` (or the log
   *   does not exist).
   * @throws RangeError if newSize < oldSize or rootHash is not 32 bytes.
   */
  compareAndSwap(origin: string, oldSize: number, newSize: number, rootHash: Uint8Array, checkpoint: string): Awaitable<boolean>
  /**
   * Adds a log at size 0 with the empty-tree root. @returns false (and changes nothing) if the
   * origin already exists.
   */
  addLog(origin: string): Awaitable<boolean>
  /**
   * Adds a verifier key (type 0x01 Ed25519 vkey) to an existing log.
   * @returns false if the log already has exactly this key.
   * @throws MalformedKeyError for a bad vkey; Error if the log is unknown or already has a
   *   different key with the same name and key ID (signatures could not be attributed).
   */
  addKey(origin: string, vkey: string): Awaitable<boolean>
  /** Removes a key (disabling the log when it was the last). @returns whether it was present. */
  deleteKey(origin: string, vkey: string): Awaitable<boolean>
  /** Every log, ordered by origin. */
  listLogs(): Awaitable<WitnessLog[]>
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS log (
  origin     TEXT PRIMARY KEY,
  tree_size  INTEGER NOT NULL CHECK (tree_size >= 0),
  root_hash  TEXT NOT NULL,   -- canonical base64 of the 32-byte RFC 6962 root
  checkpoint TEXT             -- the log-signed checkpoint note last cosigned; NULL before the first
) STRICT;
CREATE TABLE IF NOT EXISTS key (
  origin TEXT NOT NULL REFERENCES log(origin),
  vkey   TEXT NOT NULL,       -- signed-note verifier key, type 0x01
  PRIMARY KEY (origin, vkey)
) STRICT;
-- Defence in depth for operator tools editing the file: a witness never rolls a log back.
CREATE TRIGGER IF NOT EXISTS log_size_never_decreases BEFORE UPDATE OF tree_size ON log
  WHEN NEW.tree_size < OLD.tree_size
  BEGIN SELECT RAISE(ABORT, 'witness: a log''s tree size must never decrease'); END;
`

interface LogRow {
  origin: string
  tree_size: number
  root_hash: string
  checkpoint: string | null
}

/**
 * WitnessStore on a SQLite file (better-sqlite3): WAL journal, `synchronous = FULL` (a commit is
 * on disk when the call returns), foreign keys on, 5 s busy timeout so operator tools can share the
 * file. Every method is synchronous, so each call is atomic within the process; compareAndSwap is a
 * single `UPDATE … WHERE origin = ? AND tree_size = ?`, atomic across processes too.
 * Use ":memory:" for a throwaway store in tests.
 */
export class SqliteWitnessStore implements WitnessStore {
  readonly #db: Database.Database
  readonly #get: Database.Statement<[string], LogRow>
  readonly #keys: Database.Statement<[string], { vkey: string }>
  readonly #cas: Database.Statement<[number, string, string, string, number]>

  /** Opens (creating if needed) the database at `file`. */
  constructor(file: string) {
    this.#db = new Database(file)
    try {
      this.#db.pragma('journal_mode = WAL')
      this.#db.pragma('synchronous = FULL')
      this.#db.pragma('foreign_keys = ON')
      this.#db.pragma('busy_timeout = 5000')
      this.#db.exec(SCHEMA)
    } catch (e) {
      this.#db.close()
      throw e
    }
    this.#get = this.#db.prepare('SELECT origin, tree_size, root_hash, checkpoint FROM log WHERE origin = ?')
    this.#keys = this.#db.prepare('SELECT vkey FROM key WHERE origin = ? ORDER BY vkey')
    // The compare-and-swap: the WHERE on tree_size is what prevents a rollback when two requests
    // with the same old size race (c2sp.org/tlog-witness §add-checkpoint).
    this.#cas = this.#db.prepare('UPDATE log SET tree_size = ?, root_hash = ?, checkpoint = ? WHERE origin = ? AND tree_size = ?')
  }

  getLog(origin: string): WitnessLog | undefined {
    return this.#db.transaction(() => {
      const row = this.#get.get(origin)
      return row === undefined ? undefined : this.#toLog(row)
    })()
  }

  compareAndSwap(origin: string, oldSize: number, newSize: number, rootHash: Uint8Array, checkpoint: string): boolean {
    if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 0 || newSize < oldSize) {
      throw new RangeError(`witness: refusing to move a log from size ${oldSize} to ${newSize}`)
    }
    if (!(rootHash instanceof Uint8Array) || rootHash.length !== 32) throw new RangeError('witness: root hash must be 32 bytes')
    return this.#cas.run(newSize, encodeBase64(rootHash), checkpoint, origin, oldSize).changes === 1
  }

  addLog(origin: string): boolean {
    if (typeof origin !== 'string' || origin === '' || /[\u0000-\u001f]/.test(origin)) {
      throw new Error('witness: a log origin must be a non-empty line without control characters')
    }
    const r = this.#db
      .prepare('INSERT INTO log (origin, tree_size, root_hash, checkpoint) VALUES (?, 0, ?, NULL) ON CONFLICT (origin) DO NOTHING')
      .run(origin, encodeBase64(EMPTY_ROOT))
    return r.changes === 1
  }

  addKey(origin: string, vkey: string): boolean {
    const canonical = ed25519Verifier(vkey).vkey // throws MalformedKeyError unless a valid 0x01 vkey
    const { name, keyId } = parseVerifierKey(canonical)
    return this.#db.transaction(() => {
      if (this.#get.get(origin) === undefined) throw new Error(`witness: unknown log ${JSON.stringify(origin)}`)
      for (const { vkey: other } of this.#keys.all(origin)) {
        if (other === canonical) return false
        const o = parseVerifierKey(other)
        if (o.name === name && o.keyId === keyId) {
          throw new Error(`witness: log ${JSON.stringify(origin)} already has a different key named ${name} with key ID ${keyId.toString(16).padStart(8, '0')}`)
        }
      }
      this.#db.prepare('INSERT INTO key (origin, vkey) VALUES (?, ?)').run(origin, canonical)
      return true
    })()
  }

  deleteKey(origin: string, vkey: string): boolean {
    return this.#db.prepare('DELETE FROM key WHERE origin = ? AND vkey = ?').run(origin, vkey).changes > 0
  }

  listLogs(): WitnessLog[] {
    return this.#db.transaction(() =>
      this.#db
        .prepare<[], LogRow>('SELECT origin, tree_size, root_hash, checkpoint FROM log ORDER BY origin')
        .all()
        .map((row) => this.#toLog(row)),
    )()
  }

  /** Closes the database. The store must not be used afterwards. */
  close(): void {
    this.#db.close()
  }

  #toLog(row: LogRow): WitnessLog {
    return {
      origin: row.origin,
      treeSize: row.tree_size,
      rootHash: decodeHash(row.root_hash),
      checkpoint: row.checkpoint,
      keys: this.#keys.all(row.origin).map((k) => k.vkey),
    }
  }
}
