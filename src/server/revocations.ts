/**
 * The revocation transparency log: every effective-or-not `ucan/revoke` the service accepted, one
 * canonical JSON record per entry (src/ucan/revocation.ts `formatRevocationRecord`), in a log
 * run by the same engine as the space logs (src/log `Log`: RFC 6962 tree, c2sp.org/tlog-tiles,
 * checkpoints signed by the service key with key name = origin, cosigned per the witness policy).
 *
 * - Origin `<prefix>/revocations`; files under `<data>/revocations/` (tlog-tiles layout), no CARs.
 * - Served at `GET /revocations/checkpoint`, `/revocations/tile/{L}/{N}[.p/{W}]`,
 *   `/revocations/tile/entries/{N}[.p/{W}]` (published files only), `/revocations/head` (JSON) and
 *   `/revocations/entries?since=N&limit=M` (JSON records N.. of the published tree).
 * - Versioned by tree size; incremental: a client that has seen size N fetches entries from N.
 * - The revocation index (SQLite `<data>/ucan.db`, src/ucan/sqlite-revocations.ts, or PostgreSQL, src/ucan/pg-revocations.ts) is what the authorizer queries. A revocation
 *   takes effect when its row is durable (written first, without a log index: pending), then it is
 *   appended to the log and the row gets its index. Each entry carries its unique key (ucan,
 *   scope), so the log itself says what was appended: before a pending row is appended — at start,
 *   and on every retry in this process — the entries integrated since the last look (published or
 *   not) are read back and their rows given their index. Only a row still pending after that is
 *   appended, so a failure or crash between the append and the index write never duplicates it.
 * - A failed write of the log's files (issue 15 item 2) stops the log (log.ts StorageFailedError):
 *   that `ucan/revoke` is refused StorageFailed, its row stays pending (in force: fail-safe). The
 *   next record reopens the log from its last committed state (`recommit`), reconciles, and
 *   appends every row still pending, so the two stay in step without a restart.
 * - With `idleCloseMs` (several instances on one database, docs/storage.md), the log is open only
 *   while used: closed once idle that long (its write lease let go through `release`) and opened
 *   again, reading what other instances appended meanwhile, at the next record — which also
 *   appends the rows still pending, whichever instance recorded them; reads of a closed log come
 *   from its files.
 */
import type { Hono } from 'hono'
import { Log, type LogOptions, type WitnessQuorum } from '../log/log.js'
import { readEntries, readStoredCheckpoint, type StoredCheckpoint } from '../log/state.js'
import type { LogBackend, LogFiles } from '../log/storage.js'
import { TILE_WIDTH, encodeBase64, type NoteSigner } from '../tlog/index.js'
import {
  type RevocationIndex,
  type RevocationQuery,
  type RevocationRecord,
  type RevocationRecorder,
  formatRevocationRecord,
  parseRevocationRecord,
} from '../ucan/revocation.js'
import { tileRoutes } from './tile-routes.js'

/** Entries per page of `GET /revocations/entries`, at most. */
export const MAX_REVOCATION_PAGE = 1000

/** Options of {@link RevocationLog.open}. */
export interface RevocationLogOptions {
  /** Where the log's files are: the service's log backend, as `serviceLog('revocations')` (`<data>/revocations/` locally). */
  backend: Required<Pick<LogBackend, 'serviceLog'>>
  /** Origin prefix; the origin is `<prefix>/revocations`. */
  originPrefix: string
  /** The checkpoint signer for an origin (key name = origin), as for every log. */
  signer(origin: string): NoteSigner
  /** The witness client for an origin, as for every log. */
  witnesses(origin: string): WitnessQuorum
  /** The revocation index (SQLite, or PostgreSQL with a database URL). */
  store: RevocationIndex
  /** Batching knobs and logger, as for every log. */
  log?: Pick<LogOptions, 'batchMaxSize' | 'batchMaxAgeMs' | 'tileCache' | 'logger'>
  /** Closes the log once idle this long, ms (then `release`), opening it again at the next record; 0 or absent: open until {@link RevocationLog.close}. */
  idleCloseMs?: number
  /** Called once the log is closed (idle, or by close): lets the backend's write lease go (PgBackend.releaseServiceLog). Must not throw. */
  release?: () => Promise<void>
}

/** The revocation log plus the revocation index: the service's {@link RevocationRecorder}. */
export class RevocationLog implements RevocationRecorder {
  readonly #pending = new Map<string, Promise<{ record: RevocationRecord; created: boolean; index: number | undefined }>>()
  /** Entries [0, #reconciled) of the integrated tree have been matched with their index rows. */
  #reconciled = 0
  #reconciling: Promise<void> | undefined
  #log: Log
  /** A reopen after a failed write, while it runs. */
  #reopening: Promise<void> | undefined
  /** False once closed for being idle (idleCloseMs), until reopened by a record. */
  #isOpen = true
  /** Records using the log now: it is not closed for being idle meanwhile. */
  #busy = 0
  #usedAt = performance.now()
  #closingIdle: Promise<void> | undefined
  #idleTimer: NodeJS.Timeout | undefined
  /** The log's files, as last opened: reads of a closed log come from them. */
  #files: LogFiles

  private constructor(
    log: Log,
    files: LogFiles,
    readonly store: RevocationIndex,
    private readonly openLog: (recommit: boolean) => Promise<{ log: Log; files: LogFiles }>,
    private readonly o: RevocationLogOptions,
  ) {
    this.#log = log
    this.#files = files
  }

  /** The log (a new instance after a reopen; closed while idle with `idleCloseMs`). */
  get log(): Log {
    return this.#log
  }

  /** The log's checkpoint origin, `<prefix>/revocations`. */
  get origin(): string {
    return `${this.o.originPrefix}/revocations`
  }

  /** The published checkpoint and read access to the files it covers (from the files when the log is closed); undefined before the first. */
  async published(): Promise<{ checkpoint: StoredCheckpoint; readFile(path: string): Promise<Uint8Array | undefined> } | undefined> {
    if (this.#isOpen) {
      const log = this.#log
      const cp = log.checkpoint
      return cp && { checkpoint: cp, readFile: (path) => log.readFile(path) }
    }
    const files = this.#files
    const cp = await readStoredCheckpoint(files, { origin: this.origin })
    return cp && { checkpoint: cp, readFile: (path) => files.read(path) }
  }

  /** Published entries [offset, offset+limit) (fewer at the end); total = published size. */
  async read(offset: number, limit: number): Promise<{ entries: Uint8Array[]; total: number }> {
    const p = await this.published()
    if (!p) return { entries: [], total: 0 }
    return { entries: await readEntries({ read: (path) => p.readFile(path) }, p.checkpoint.size, offset, limit), total: p.checkpoint.size }
  }

  /** True while the log is open here (with a database: while this instance holds its write lease or is taking it). */
  get isOpen(): boolean {
    return this.#isOpen || this.#reopening !== undefined
  }

  /**
   * Opens the log here (taking its lease with a database) and keeps it open — not closed for being
   * idle — until the returned release is called (once): what a `ucan/revoke` request arriving at
   * this instance holds while it runs (src/server/forward.ts).
   * @throws LeaseHeld (rejects) when another instance holds the log past the lease's wait; nothing held.
   */
  async hold(): Promise<() => void> {
    await this.#use()
    let released = false
    return () => {
      if (released) return
      released = true
      this.#done()
    }
  }

  /** Holds the log open (opening it again if closed for being idle) until {@link #done}. */
  async #use(): Promise<void> {
    this.#busy++
    try {
      await this.#closingIdle
      if (!this.#isOpen) {
        this.#reopening ??= (async () => {
          try {
            const opened = await this.openLog(false)
            this.#log = opened.log
            this.#files = opened.files
            this.#isOpen = true
            // Rows recorded (in force) but never appended — by an instance refused LeaseHeld, or one
            // that died between the two — are appended by the next writer, each once.
            await this.#appendPending()
          } finally {
            this.#reopening = undefined
          }
        })()
      }
      await this.#reopening
    } catch (err) {
      this.#done()
      throw err
    }
  }

  #done(): void {
    this.#busy--
    this.#usedAt = performance.now()
  }

  /** Closes the log when idle for idleCloseMs (no record using it, nothing queued), then lets its lease go. */
  #closeIfIdle(idleMs: number): void {
    if (!this.#isOpen || this.#busy > 0 || this.#closingIdle || this.#reopening || !this.#log.idle || performance.now() - this.#usedAt < idleMs) return
    this.#isOpen = false
    const log = this.#log
    this.#closingIdle = (async () => {
      try {
        await log.close()
        await this.o.release?.()
      } catch (err) {
        this.o.log?.logger?.warn({ err, log: 'revocations' }, 'closing the idle revocation log failed')
      } finally {
        this.#closingIdle = undefined
      }
    })()
  }

  /**
   * Opens the log (creating it empty) and reconciles it with the revocation index: every integrated
   * entry (published or not) gets its row and index, then rows still pending are appended.
   * @throws CorruptLogError as `Log.open`; InvalidRevocationRecord if an entry is not a record.
   */
  static async open(o: RevocationLogOptions): Promise<RevocationLog> {
    const origin = `${o.originPrefix}/revocations`
    // The files are taken again at every open: with a database, that takes the write lease again.
    const openLog = async (recommit: boolean) => {
      const files: LogFiles = await o.backend.serviceLog('revocations')
      return { files, log: await Log.open({ id: 'revocations', origin, signer: o.signer(origin), witnesses: o.witnesses(origin), files, ...o.log, recommit }) }
    }
    const first = await openLog(false)
    const r = new RevocationLog(first.log, first.files, o.store, openLog, o)
    await r.#reconcile()
    for (const record of await o.store.unlogged()) await r.#append(record)
    const idleMs = o.idleCloseMs ?? 0
    if (idleMs > 0) {
      r.#idleTimer = setInterval(() => r.#closeIfIdle(idleMs), Math.max(10, Math.floor(idleMs / 2)))
      r.#idleTimer.unref()
    }
    return r
  }

  /**
   * After a failed write stopped the log: closes it and opens it again (recommitting), once for
   * concurrent callers, then reconciles and appends the rows left pending. A reopen that fails
   * rejects (the caller's revoke is refused) and is tried again at the next record.
   */
  #reopenIfFailed(): Promise<void> {
    if (!this.#log.failed) return this.#reopening ?? Promise.resolve()
    this.#reopening ??= (async () => {
      try {
        await this.#log.close()
        const opened = await this.openLog(true)
        this.#log = opened.log
        this.#files = opened.files
        await this.#appendPending()
      } finally {
        this.#reopening = undefined
      }
    })()
    return this.#reopening
  }

  findRevoked(query: RevocationQuery): Promise<string | undefined> {
    return this.store.findRevoked(query)
  }

  /**
   * Makes `record` effective (durable index row), then appends it to the log unless it is there
   * already; resolves once the entry is durable in the log. Idempotent per (ucan, scope), also
   * after a failure between the append and the index write.
   * @throws RevocationScopeFull (rejects) as {@link RevocationIndex.record}; nothing recorded.
   */
  record(record: RevocationRecord): Promise<{ record: RevocationRecord; created: boolean; index: number | undefined }> {
    const key = `${record.ucan} ${record.scope}`
    const inFlight = this.#pending.get(key)
    if (inFlight !== undefined) return inFlight.then((r) => ({ ...r, created: false }))
    const p = (async () => {
      const r = await this.store.record(record)
      if (r.index !== undefined) return r
      await this.#use()
      try {
        // A pending row: an earlier attempt (or another instance) may have appended it and failed before the index write.
        await this.#reconcile()
        const index = await this.store.logIndex(r.record)
        return { ...r, index: index ?? (await this.#append(r.record)) }
      } finally {
        this.#done()
      }
    })()
    this.#pending.set(key, p)
    const done = () => this.#pending.delete(key)
    p.then(done, done)
    return p
  }

  /** Appends a pending record and stores its index (reopening the log first if a failed write stopped it). */
  async #append(record: RevocationRecord): Promise<number> {
    await this.#reopenIfFailed()
    const known = await this.store.logIndex(record)
    return known ?? (await this.#appendNow(record))
  }

  /**
   * Reconciles, then appends every row still pending (in force, not in the log): those of a failed
   * write, and with several instances those another instance recorded but did not append. Called
   * with the log open (and its lease held); never through {@link #append} (it waits for a reopen).
   */
  async #appendPending(): Promise<void> {
    await this.#reconcile()
    for (const record of await this.store.unlogged()) {
      if ((await this.store.logIndex(record)) === undefined) await this.#appendNow(record)
    }
  }

  async #appendNow(record: RevocationRecord): Promise<number> {
    const { index } = await this.#log.append(formatRevocationRecord(record))
    await this.store.setLogIndex(record, index)
    return index
  }

  /**
   * Reads the entries integrated since the last call (published or not) and gives each its row
   * and index in the revocation index (adding a row the index lost). One reconciliation at a time; each entry is
   * read once per process.
   */
  #reconcile(): Promise<void> {
    const run = async (): Promise<void> => {
      const size = this.log.treeSize
      const files = { read: (path: string) => this.log.readFile(path) }
      // One entry bundle at a time (state.ts readEntries, over the integrated tree, published or not).
      while (this.#reconciled < size) {
        const offset = this.#reconciled
        const entries = await readEntries(files, size, offset, TILE_WIDTH - (offset % TILE_WIDTH))
        for (const [k, e] of entries.entries()) await this.store.restore(parseRevocationRecord(e), offset + k)
        this.#reconciled = offset + entries.length
      }
    }
    const p = (this.#reconciling ?? Promise.resolve()).then(run)
    this.#reconciling = p.catch(() => {})
    return p
  }

  /** Flushes and closes the log (and lets its lease go). */
  async close(): Promise<void> {
    clearInterval(this.#idleTimer)
    await this.#reopening?.catch(() => {})
    await this.#closingIdle
    if (!this.#isOpen) return
    this.#isOpen = false
    await this.#log.close()
    await this.o.release?.()
  }
}

/**
 * The public read routes of the revocation log, to mount at `/revocations`: `checkpoint`,
 * `tile/...` (tlog-tiles, only what the published checkpoint covers), `head` and `entries`.
 */
export function revocationRoutes(r: RevocationLog, vkey: string): Hono {
  // checkpoint, tiles and entry bundles: the same routes as every space log's (tile-routes.ts).
  const app = tileRoutes({
    published: () => r.published(),
    missing: { checkpoint: 'no checkpoint yet\n', tile: 'not found\n' },
  })
  app.get('/head', async (c) => {
    const cp = (await r.published())?.checkpoint
    return c.json(
      { origin: r.origin, vkey, treeSize: cp?.size ?? 0, rootHash: cp ? encodeBase64(cp.rootHash) : null, checkpoint: cp?.note ?? null },
      200,
      { 'cache-control': 'no-cache' },
    )
  })
  app.get('/entries', async (c) => {
    const since = c.req.query('since') ?? '0'
    const limit = c.req.query('limit') ?? '100'
    if (!/^[0-9]{1,15}$/.test(since) || !/^[0-9]{1,4}$/.test(limit) || Number(limit) < 1 || Number(limit) > MAX_REVOCATION_PAGE) {
      return c.json({ error: `since must be an integer ≥ 0 and limit 1..${MAX_REVOCATION_PAGE}` }, 400)
    }
    const page = await r.read(Number(since), Number(limit))
    const entries = page.entries.map((e, k) => ({ index: Number(since) + k, ...parseRevocationRecord(e) }))
    return c.json({ treeSize: page.total, entries }, 200, { 'cache-control': 'no-cache' })
  })
  return app
}
