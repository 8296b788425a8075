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
 * - SQLite (`<data>/ucan.db`, src/ucan/store.ts) is the index the authorizer queries. A revocation
 *   takes effect when its row is durable, then it is appended to the log and the row gets its
 *   index. At start the two are brought in step: published log entries missing from SQLite are
 *   restored, and rows without an index (a crash in between) are appended.
 */
import { join } from 'node:path'
import { Hono } from 'hono'
import { Log, type Cosigner, type LogOptions } from '../log/log.js'
import { tileWidth } from '../log/tile-hashes.js'
import { FileStore } from '../storage/file-store.js'
import { TILE_WIDTH, encodeBase64, entryBundlePath, parseTilePath, tilePath, type NoteSigner } from '../tlog/index.js'
import {
  type RevocationQuery,
  type RevocationRecord,
  type RevocationRecorder,
  formatRevocationRecord,
  parseRevocationRecord,
} from '../ucan/revocation.js'
import type { SqliteRevocations } from '../ucan/store.js'

/** Entries per page of `GET /revocations/entries`, at most. */
export const MAX_REVOCATION_PAGE = 1000

/** Options of {@link RevocationLog.open}. */
export interface RevocationLogOptions {
  /** The service's data directory; the log lives in `<dataDir>/revocations/`. */
  dataDir: string
  /** Origin prefix; the origin is `<prefix>/revocations`. */
  originPrefix: string
  /** The checkpoint signer for an origin (key name = origin), as for every log. */
  signer(origin: string): NoteSigner
  /** The witness client for an origin, as for every log. */
  witnesses(origin: string): Cosigner
  /** The SQLite revocation index. */
  store: SqliteRevocations
  /** Batching knobs and logger, as for every log. */
  log?: Pick<LogOptions, 'batchMaxSize' | 'batchMaxAgeMs' | 'logger'>
}

/** The revocation log plus the SQLite index: the service's {@link RevocationRecorder}. */
export class RevocationLog implements RevocationRecorder {
  readonly #pending = new Map<string, Promise<{ record: RevocationRecord; created: boolean; index: number | undefined }>>()

  private constructor(
    readonly log: Log,
    readonly store: SqliteRevocations,
  ) {}

  /** The log's checkpoint origin, `<prefix>/revocations`. */
  get origin(): string {
    return this.log.origin
  }

  /**
   * Opens the log (creating it empty) and reconciles it with the SQLite index.
   * @throws CorruptLogError as `Log.open`; InvalidRevocationRecord if an entry is not a record.
   */
  static async open(o: RevocationLogOptions): Promise<RevocationLog> {
    const origin = `${o.originPrefix}/revocations`
    const files = await FileStore.create(join(o.dataDir, 'revocations'))
    const log = await Log.open({ id: 'revocations', origin, signer: o.signer(origin), witnesses: o.witnesses(origin), files, ...o.log })
    const r = new RevocationLog(log, o.store)
    // Published entries → SQLite (a lost or older index is rebuilt from the log).
    for (let offset = 0; ; offset += MAX_REVOCATION_PAGE) {
      const page = await log.read(offset, MAX_REVOCATION_PAGE)
      page.entries.forEach((e, k) => o.store.restore(parseRevocationRecord(e), offset + k))
      if (offset + MAX_REVOCATION_PAGE >= page.total) break
    }
    // SQLite rows never appended (a crash between effect and log) → the log. A crash after the
    // append but before the index was stored may repeat an entry; the set is the same.
    for (const record of o.store.unlogged()) await r.#append(record)
    return r
  }

  findRevoked(query: RevocationQuery): Promise<string | undefined> {
    return this.store.findRevoked(query)
  }

  /**
   * Makes `record` effective (durable SQLite row), then appends it to the log unless it is there
   * already; resolves once the entry is durable in the log. Idempotent per (ucan, scope).
   */
  record(record: RevocationRecord): Promise<{ record: RevocationRecord; created: boolean; index: number | undefined }> {
    const key = `${record.ucan} ${record.scope}`
    const inFlight = this.#pending.get(key)
    if (inFlight !== undefined) return inFlight.then((r) => ({ ...r, created: false }))
    const p = (async () => {
      const r = await this.store.record(record)
      if (r.index !== undefined) return r
      return { ...r, index: await this.#append(r.record) }
    })()
    this.#pending.set(key, p)
    const done = () => this.#pending.delete(key)
    p.then(done, done)
    return p
  }

  async #append(record: RevocationRecord): Promise<number> {
    const { index } = await this.log.append(formatRevocationRecord(record))
    this.store.setLogIndex(record, index)
    return index
  }

  /** Flushes and closes the log. */
  close(): Promise<void> {
    return this.log.close()
  }
}

/**
 * The public read routes of the revocation log, to mount at `/revocations`: `checkpoint`,
 * `tile/...` (tlog-tiles, only what the published checkpoint covers), `head` and `entries`.
 */
export function revocationRoutes(r: RevocationLog, vkey: string): Hono {
  const app = new Hono()
  const IMMUTABLE = 'public, max-age=31536000, immutable'
  app.get('/checkpoint', (c) => {
    const cp = r.log.checkpoint
    if (!cp) return c.text('no checkpoint yet\n', 404)
    return c.text(cp.note, 200, { 'cache-control': 'public, max-age=2', 'content-type': 'text/plain; charset=utf-8' })
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
  app.get('/tile/*', async (c) => {
    const rest = c.req.path.slice(c.req.path.indexOf('/tile/') + 1)
    let parsed: ReturnType<typeof parseTilePath>
    try {
      parsed = parseTilePath(rest)
    } catch {
      return c.text('malformed tile path\n', 400)
    }
    const cp = r.log.checkpoint
    if (!cp) return c.text('not found\n', 404)
    let path: string
    if (parsed.kind === 'tile') {
      const t = parsed.tile
      if (t.width > tileWidth(t.level, t.index, cp.size)) return c.text('tile not found\n', 404)
      path = tilePath(t)
    } else {
      const have = Math.max(0, Math.min(TILE_WIDTH, cp.size - parsed.index * TILE_WIDTH))
      if (parsed.width > have) return c.text('entry bundle not found\n', 404)
      path = entryBundlePath(parsed.index, parsed.width)
    }
    const bytes = await r.log.readFile(path)
    if (!bytes) return c.text('not found\n', 404)
    return c.body(new Uint8Array(bytes), 200, { 'content-type': 'application/octet-stream', 'cache-control': IMMUTABLE })
  })
  return app
}
