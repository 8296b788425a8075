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
 */
import type { Hono } from 'hono'
import { Log, type LogOptions, type WitnessQuorum } from '../log/log.js'
import { readEntries } from '../log/state.js'
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

  private constructor(
    log: Log,
    readonly store: RevocationIndex,
    private readonly openLog: (recommit: boolean) => Promise<Log>,
  ) {
    this.#log = log
  }

  /** The log (a new instance after a reopen). */
  get log(): Log {
    return this.#log
  }

  /** The log's checkpoint origin, `<prefix>/revocations`. */
  get origin(): string {
    return this.log.origin
  }

  /**
   * Opens the log (creating it empty) and reconciles it with the revocation index: every integrated
   * entry (published or not) gets its row and index, then rows still pending are appended.
   * @throws CorruptLogError as `Log.open`; InvalidRevocationRecord if an entry is not a record.
   */
  static async open(o: RevocationLogOptions): Promise<RevocationLog> {
    const origin = `${o.originPrefix}/revocations`
    const files: LogFiles = await o.backend.serviceLog('revocations')
    const openLog = (recommit: boolean) => Log.open({ id: 'revocations', origin, signer: o.signer(origin), witnesses: o.witnesses(origin), files, ...o.log, recommit })
    const r = new RevocationLog(await openLog(false), o.store, openLog)
    await r.#reconcile()
    for (const record of await o.store.unlogged()) await r.#append(record)
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
        this.#log = await this.openLog(true)
        await this.#reconcile()
        for (const record of await this.store.unlogged()) {
          if ((await this.store.logIndex(record)) === undefined) await this.#appendNow(record)
        }
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
      // A pending row: an earlier attempt may have appended it and failed before the index write.
      await this.#reconcile()
      const index = await this.store.logIndex(r.record)
      return { ...r, index: index ?? (await this.#append(r.record)) }
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

  /** Flushes and closes the log. */
  async close(): Promise<void> {
    await this.#reopening?.catch(() => {})
    return this.#log.close()
  }
}

/**
 * The public read routes of the revocation log, to mount at `/revocations`: `checkpoint`,
 * `tile/...` (tlog-tiles, only what the published checkpoint covers), `head` and `entries`.
 */
export function revocationRoutes(r: RevocationLog, vkey: string): Hono {
  // checkpoint, tiles and entry bundles: the same routes as every space log's (tile-routes.ts).
  const app = tileRoutes({
    published: async () => {
      const cp = r.log.checkpoint
      return cp && { checkpoint: cp, readFile: (path) => r.log.readFile(path) }
    },
    missing: { checkpoint: 'no checkpoint yet\n', tile: 'not found\n' },
  })
  app.get('/head', (c) => {
    const cp = r.log.checkpoint
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
    const page = await r.log.read(Number(since), Number(limit))
    const entries = page.entries.map((e, k) => ({ index: Number(since) + k, ...parseRevocationRecord(e) }))
    return c.json({ treeSize: page.total, entries }, 200, { 'cache-control': 'no-cache' })
  })
  return app
}
