/**
 * The lookup index behind `GET /logs/<space>/lookup` (docs/auditing.md "Lookup"): for every
 * published entry of every space log, its RFC 6962 leaf hash (SHA-256(0x00 ‖ entry)) and its
 * content hash (SHA-256(entry)) → its index.
 *
 * One SQLite file for the service (`<data>/lookup.db`), WAL, `synchronous = NORMAL`: it is derived
 * data, rebuilt from the published entry bundles, so it never needs to be fsynced with the log.
 * - `logs(n, id, indexed)`: entries [0, indexed) of log `id` are in the index;
 * - `leaf(log, hash, idx)` and `sha(log, hash, idx)`, WITHOUT ROWID, keyed by (log, hash, idx).
 * Each chunk of entries is inserted in one transaction together with the new `indexed`, so after a
 * crash the index is exactly entries [0, indexed) and catching up resumes there (crash-safe). A
 * missing or unreadable file is recreated empty and rebuilt; a log whose published size, when this
 * process first indexes it, is below `indexed` (its data directory restored from an older copy) is
 * dropped and rebuilt. Answers hold only indexes below the size of the view asked about.
 *
 * Catching up reads the published entry bundles (LogManager.published: no log is opened), in
 * chunks of at most {@link CATCH_UP_CHUNK} entries / {@link CATCH_UP_CHUNK_BYTES} bytes. It runs in
 * the background after each publication (one log at a time, in slices of `catchUpEntries`, queue
 * bounded by the number of logs) and, bounded by `catchUpEntries`, in a lookup that finds the index
 * behind — which waits for at most the one slice running for that log.
 *
 * The same file holds each log's checkpoint history ({@link EntryIndex.history},
 * src/server/checkpoint-history.ts).
 */
import { createHash } from 'node:crypto'
import { rmSync } from 'node:fs'
import Database from 'better-sqlite3'
import { leafHash } from '../tlog/index.js'
import type { PublishedView } from '../log/log-manager.js'
import { CheckpointHistory } from './checkpoint-history.js'
import { boundSqliteCache, sqliteCacheBytes } from '../storage/sqlite-cache.js'

/** The index file's name in the data directory. */
export const LOOKUP_INDEX_FILE = 'lookup.db'
/** Default most indexes one lookup answers (more → `truncated: true`). */
export const DEFAULT_LOOKUP_MAX_RESULTS = 1000
/** Default most entries one lookup request indexes itself when the index is behind (then 503 + Retry-After while the background catches up). */
export const DEFAULT_LOOKUP_CATCH_UP_ENTRIES = 4096
/** Most entries read and inserted per transaction while catching up. */
export const CATCH_UP_CHUNK = 1024
/** Most entry bytes read per chunk while catching up (≥ one maximal entry, so every chunk progresses). */
export const CATCH_UP_CHUNK_BYTES = 4 << 20

/** Which hash a lookup is by: the RFC 6962 leaf hash, or SHA-256 of the entry bytes. */
export type LookupKind = 'leafHash' | 'sha256'

/** A lookup's answer: the indexes (ascending, all < `size`), and whether more matched than `maxResults`. */
export interface LookupAnswer {
  indexes: number[]
  truncated: boolean
}

/** Options of {@link EntryIndex.open}. */
export interface EntryIndexOptions {
  /** The published view of a log (LogManager.published), undefined when it has published nothing. */
  published(id: string): Promise<PublishedView | undefined>
  /** Most indexes per answer, ≥ 1; default {@link DEFAULT_LOOKUP_MAX_RESULTS}. */
  maxResults?: number
  /** Most entries a lookup indexes itself, ≥ 1; default {@link DEFAULT_LOOKUP_CATCH_UP_ENTRIES}. */
  catchUpEntries?: number
  /** Most checkpoint-history points kept per log, ≥ 2; default DEFAULT_HISTORY_MAX_POINTS (checkpoint-history.ts). */
  historyMaxPoints?: number
  /** Where background catch-up failures are reported (they are retried at the next publication or lookup). */
  onError?(err: unknown, id: string): void
  /** Page cache of the index's connection, bytes (src/storage/sqlite-cache.ts; default 2 MiB). */
  cacheBytes?: number
}

/** The index is behind the published tree by more than a lookup may index itself: retry shortly (503 + Retry-After). */
export class IndexCatchingUpError extends Error {
  override name = 'IndexCatchingUp'
  constructor(
    readonly indexed: number,
    readonly size: number,
  ) {
    super(`the lookup index covers ${indexed} of ${size} entries; it is catching up, retry shortly`)
  }
}

/** The service's lookup index (see the module comment). */
export class EntryIndex {
  readonly #db: Database.Database
  readonly #o: Required<Omit<EntryIndexOptions, 'onError' | 'historyMaxPoints' | 'cacheBytes'>> & Pick<EntryIndexOptions, 'onError'>
  /** Each log's published checkpoints (size, root, time), in the same file: the explorer's chart. */
  readonly history: CheckpointHistory
  readonly #running = new Map<string, Promise<void>>()
  /** Logs waiting for a background catch-up (at most one entry per log: bounded by the number of logs). */
  readonly #queue = new Set<string>()
  /** Logs whose coverage was checked against their published size in this process (at most the number of logs). */
  readonly #checked = new Set<string>()
  #worker: Promise<void> | undefined
  #closed = false
  readonly #stmts: ReturnType<typeof prepare>

  private constructor(db: Database.Database, o: EntryIndexOptions) {
    this.#db = db
    this.#o = { maxResults: DEFAULT_LOOKUP_MAX_RESULTS, catchUpEntries: DEFAULT_LOOKUP_CATCH_UP_ENTRIES, ...o }
    if (!Number.isSafeInteger(this.#o.maxResults) || this.#o.maxResults < 1) throw new RangeError('maxResults must be an integer ≥ 1')
    if (!Number.isSafeInteger(this.#o.catchUpEntries) || this.#o.catchUpEntries < 1) throw new RangeError('catchUpEntries must be an integer ≥ 1')
    this.#stmts = prepare(db)
    this.history = new CheckpointHistory(db, o.historyMaxPoints)
  }

  /** Opens (or creates, or recreates when unreadable) the index file `file`. */
  static open(file: string, o: EntryIndexOptions): EntryIndex {
    try {
      return new EntryIndex(openDb(file, o.cacheBytes), o)
    } catch {
      // Derived data: an unreadable file is replaced and rebuilt from the logs.
      for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true })
      return new EntryIndex(openDb(file, o.cacheBytes), o)
    }
  }

  /** The page cache bound of the index's connection, bytes (read back from SQLite). */
  get sqliteCacheBytes(): number {
    return sqliteCacheBytes(this.#db)
  }

  /** Entries of log `id` the index holds ([0, n)); 0 for a log it has never seen. */
  indexed(id: string): number {
    return this.#stmts.getLog.get(id)?.indexed ?? 0
  }

  /**
   * The indexes of the entries of `view`'s published tree whose `kind` hash is `hash` (32 bytes).
   * Catches the index up first, indexing at most `catchUpEntries` entries here.
   * @throws IndexCatchingUpError when more remain (a background catch-up is scheduled).
   */
  async lookup(view: PublishedView, kind: LookupKind, hash: Uint8Array): Promise<LookupAnswer> {
    const size = view.checkpoint.size
    await this.#catchUp(view.id, view, this.#o.catchUpEntries)
    const indexed = this.indexed(view.id)
    if (indexed < size) {
      this.schedule(view.id)
      throw new IndexCatchingUpError(indexed, size)
    }
    const n = this.#stmts.getLog.get(view.id)?.n
    if (n === undefined) return { indexes: [], truncated: false }
    const q = kind === 'leafHash' ? this.#stmts.findLeaf : this.#stmts.findSha
    const rows = q.all(n, Buffer.from(hash), size, this.#o.maxResults + 1)
    const indexes = rows.slice(0, this.#o.maxResults).map((r) => r.idx)
    return { indexes, truncated: rows.length > this.#o.maxResults }
  }

  /** Schedules a background catch-up of log `id` (after a publication); never throws. */
  schedule(id: string): void {
    if (this.#closed) return
    this.#queue.add(id)
    this.#worker ??= this.#work().finally(() => (this.#worker = undefined))
  }

  /** Waits for the background catch-ups queued so far (tests, benchmarks). */
  async settled(): Promise<void> {
    while (this.#worker) await this.#worker
  }

  /** Stops the background work (the running chunk finishes) and closes the file. */
  async close(): Promise<void> {
    this.#closed = true
    this.#queue.clear()
    await this.#worker
    await Promise.all(this.#running.values())
    this.#db.close()
  }

  async #work(): Promise<void> {
    for (const id of this.#queue) {
      this.#queue.delete(id)
      if (this.#closed) return
      try {
        // In slices of catchUpEntries, the log going to the back of the queue between them: a
        // lookup waits for one slice at most, and one large log does not hold up the others.
        const view = await this.#o.published(id)
        if (!view) continue
        await this.#catchUp(id, view, this.#o.catchUpEntries)
        if (this.indexed(id) < view.checkpoint.size) this.#queue.add(id)
      } catch (err) {
        this.#o.onError?.(err, id)
      }
    }
  }

  /** Indexes up to `budget` entries of `view` past what the index holds; one catch-up per log at a time. */
  async #catchUp(id: string, view: PublishedView, budget: number): Promise<void> {
    for (;;) {
      const running = this.#running.get(id)
      if (!running) break
      await running.catch(() => {})
    }
    const run = this.#index(id, view, budget)
    this.#running.set(id, run)
    try {
      await run
    } finally {
      if (this.#running.get(id) === run) this.#running.delete(id)
    }
  }

  async #index(id: string, view: PublishedView, budget: number): Promise<void> {
    const size = view.checkpoint.size
    let row = this.#stmts.getLog.get(id)
    // Checked once per log per process: later views may be older than what another catch-up
    // indexed since (a view read before a publication), never smaller than what a past process saw.
    if (!this.#checked.has(id)) {
      if (row && row.indexed > size) {
        this.#stmts.dropLog(row.n) // restored from an older copy: rebuild
        row = undefined
      }
      this.#checked.add(id)
    }
    if (!row) row = this.#stmts.addLog(id)
    let at = row.indexed
    while (at < size && budget > 0 && !this.#closed) {
      const entries = await view.read(at, Math.min(CATCH_UP_CHUNK, budget, size - at), CATCH_UP_CHUNK_BYTES)
      if (entries.length === 0) throw new Error(`log ${id}: no entry readable at ${at}`)
      const rows = entries.map((e, k) => ({ idx: at + k, leaf: Buffer.from(leafHash(e)), sha: createHash('sha256').update(e).digest() }))
      if (this.#closed) return
      this.#stmts.insert(row.n, at, rows)
      at += entries.length
      budget -= entries.length
    }
  }
}

function openDb(file: string, cacheBytes: number | undefined): Database.Database {
  const db = new Database(file)
  try {
    boundSqliteCache(db, cacheBytes)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.exec(`
      CREATE TABLE IF NOT EXISTS logs (n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, indexed INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS leaf (log INTEGER NOT NULL, hash BLOB NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (log, hash, idx)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS sha (log INTEGER NOT NULL, hash BLOB NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (log, hash, idx)) WITHOUT ROWID;
    `)
    db.prepare('SELECT count(*) FROM logs').get() // fails on a corrupt file
    return db
  } catch (err) {
    db.close()
    throw err
  }
}

function prepare(db: Database.Database) {
  const getLog = db.prepare<[string], { n: number; indexed: number }>('SELECT n, indexed FROM logs WHERE id = ?')
  const insLog = db.prepare<[string]>('INSERT INTO logs (id, indexed) VALUES (?, 0)')
  const setIndexed = db.prepare<[number, number, number]>('UPDATE logs SET indexed = ? WHERE n = ? AND indexed = ?')
  const insLeaf = db.prepare<[number, Buffer, number]>('INSERT OR IGNORE INTO leaf (log, hash, idx) VALUES (?, ?, ?)')
  const insSha = db.prepare<[number, Buffer, number]>('INSERT OR IGNORE INTO sha (log, hash, idx) VALUES (?, ?, ?)')
  const delLeaf = db.prepare<[number]>('DELETE FROM leaf WHERE log = ?')
  const delSha = db.prepare<[number]>('DELETE FROM sha WHERE log = ?')
  const delLog = db.prepare<[number]>('DELETE FROM logs WHERE n = ?')
  return {
    getLog,
    addLog: (id: string) => {
      insLog.run(id)
      return getLog.get(id)!
    },
    dropLog: db.transaction((n: number) => {
      delLeaf.run(n)
      delSha.run(n)
      delLog.run(n)
    }),
    insert: db.transaction((n: number, from: number, rows: { idx: number; leaf: Buffer; sha: Buffer }[]) => {
      for (const r of rows) {
        insLeaf.run(n, r.leaf, r.idx)
        insSha.run(n, r.sha, r.idx)
      }
      if (setIndexed.run(from + rows.length, n, from).changes !== 1) throw new Error('lookup index changed under a catch-up')
    }),
    findLeaf: db.prepare<[number, Buffer, number, number], { idx: number }>('SELECT idx FROM leaf WHERE log = ? AND hash = ? AND idx < ? ORDER BY idx LIMIT ?'),
    findSha: db.prepare<[number, Buffer, number, number], { idx: number }>('SELECT idx FROM sha WHERE log = ? AND hash = ? AND idx < ? ORDER BY idx LIMIT ?'),
  }
}
