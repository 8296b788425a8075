/**
 * The HTTP surface (docs/wire.md): the ucanto RPC route and the public read routes of
 * c2sp.org/tlog-tiles. Routes are thin: they validate the path, call the log, map errors to a
 * status once, and never send a stack trace.
 */
import { Hono, type Context } from 'hono'
import { getConnInfo } from '@hono/node-server/conninfo'
import type { Registry } from 'prom-client'
import type { LogManager } from '../log/log-manager.js'
import { encodeBase64 } from '../tlog/index.js'
import { formatLogList } from '../../witness/index.js'
import { tileRoutes } from './tile-routes.js'
import { rpcBodyLimit } from './body-limit.js'
import { readCors } from './cors.js'
import { DEFAULT_ENTRIES_PAGE_BYTES, DEFAULT_ENTRIES_PAGE_MAX, readRoutes } from './read-routes.js'
import type { EntryIndex } from './entry-index.js'
import { explorerRoutes } from './explorer.js'
import type { StorageFullStatus } from './storage-health.js'
import { DEFAULT_MAX_BODY_BYTES } from '../ucan/wire.js'

// Declared with the wire format, so clients (src/client) check a request against it before sending.
export { DEFAULT_MAX_BODY_BYTES }

/** A ucanto server's HTTP entry point (`ServerView.request`). */
export interface RpcHandler {
  /** `client` is the peer's IP address (the TCP socket's), when the request came over a socket. */
  request(req: { headers: Record<string, string>; body: Uint8Array; client?: string }):
    | PromiseLike<{ status?: number; headers: Record<string, string>; body: Uint8Array }>
    | { status?: number; headers: Record<string, string>; body: Uint8Array }
}

/** What {@link createApp} serves: the logs, the RPC handler, /info and /did, metrics and the bundled witness. */
export interface AppOptions {
  logs: LogManager
  rpc: RpcHandler
  /** The JSON served at `GET /info`. */
  info: () => object | Promise<object>
  /** The service DID served at `GET /did`. */
  did: string
  /** The note verifier key (vkey) of a log's checkpoint signer. */
  logVkey: (origin: string) => string
  metrics?: Registry
  /** The storage-full status (src/server/storage-health.ts), shown at `/healthz` (503) while set. */
  storageFull?: () => StorageFullStatus | undefined
  /** The database's health (src/server/database.ts): `ok` or the named error, shown at `/healthz`; absent without a database. */
  database?: () => Promise<string>
  /** The upload status of a log's CARs to its Storacha space (shown at /head as `upload`), when uploads are on. */
  uploadStatus?: (space: string) => object | null | Promise<object | null>
  /** Mounted at `/witness` when given (the bundled witness). */
  witness?: Hono
  /** Logs besides the spaces' (e.g. the revocation log) that witnesses must know, listed at `/logs.txt`. */
  otherLogs?: () => { origin: string; vkey: string }[]
  maxBodyBytes?: number
  /** The revocation log's read routes (src/server/revocations.ts), mounted at `/revocations`. */
  revocations?: Hono
  onError?: (err: unknown) => void
  /** The lookup index behind `GET /logs/<space>/lookup` (src/server/entry-index.ts); without it that route is 404. */
  entryIndex?: EntryIndex
  /** Most entries per `GET /logs/<space>/entries` page; default {@link DEFAULT_ENTRIES_PAGE_MAX}. */
  entriesPageMax?: number
  /** Most entry bytes per such page; default {@link DEFAULT_ENTRIES_PAGE_BYTES}. */
  entriesPageBytes?: number
}

/** A space DID as a path segment: `did:key:z` + base58btc. Anything else is 404 without touching storage. */
const SPACE_DID = /^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$/

/**
 * The service's Hono app: `POST /rpc` and `POST /` (ucanto CAR transport, body capped at
 * `maxBodyBytes` → 413) and the public read routes of c2sp.org/tlog-tiles under `/logs/{space}/`.
 * Unknown logs and files not covered by the published checkpoint are 404; malformed tile paths 400.
 */
export function createApp(o: AppOptions): Hono {
  const app = new Hono()
  const limit = rpcBodyLimit({
    maxSize: o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    onError: (c) => c.text('request body too large\n', 413),
  })
  const rpc = async (c: Context) => {
    const body = new Uint8Array(await c.req.arrayBuffer())
    const headers = Object.fromEntries(c.req.raw.headers)
    const res = await o.rpc.request({ headers, body, client: clientAddress(c) })
    return new Response(new Uint8Array(res.body), { status: res.status ?? 200, headers: res.headers })
  }
  app.post('/rpc', limit, rpc)
  app.post('/', limit, rpc)

  // CORS on the public read routes only (cors.ts says why not on /rpc, /metrics, /healthz, /witness).
  const cors = readCors()
  for (const path of ['/did', '/info', '/logs.txt', '/logs/*', '/revocations/*']) app.use(path, cors)

  app.get('/did', (c) => c.text(o.did + '\n', 200, { 'cache-control': 'no-cache' }))
  app.get('/info', async (c) => c.json(await o.info(), 200, { 'cache-control': 'no-cache' }))
  // `ok` while every log can be served and the storage has room; 503 with the damaged logs (file and
  // problem) and, while the last append failed for want of space, `storage: {status: 'StorageFull'}`.
  // With a database (--database-url), `database` is `ok` or the named error its check met (JSON, 503 unless ok).
  app.get('/healthz', async (c) => {
    const damaged = o.logs.damaged()
    const storage = o.storageFull?.()
    const database = await o.database?.()
    if (damaged.length === 0 && !storage && (database === undefined || database === 'ok')) {
      return database === undefined ? c.text('ok\n') : c.json({ status: 'ok', database }, 200, { 'cache-control': 'no-cache' })
    }
    return c.json(
      { status: 'degraded', logs: damaged.map((d) => ({ ...d, status: 'damaged' })), ...(storage ? { storage } : {}), ...(database !== undefined ? { database } : {}) },
      503,
      { 'cache-control': 'no-cache', ...(database !== undefined && database !== 'ok' ? { 'retry-after': '1' } : {}) },
    )
  })
  // Every log of this service in the witness network's log-list format (logs/v0), for witness
  // operators: `ucanlog witness pull-logs --source <url>/logs.txt`. Key name = origin, so no
  // origin lines.
  app.get('/logs.txt', async (c) => {
    const ids = (await o.logs.list()).sort()
    const spaces = ids.map((id) => ({ origin: o.logs.origin(id), vkey: o.logVkey(o.logs.origin(id)) }))
    const list = formatLogList([...(o.otherLogs?.() ?? []), ...spaces])
    return c.text(list, 200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' })
  })
  if (o.metrics) {
    const m = o.metrics
    app.get('/metrics', async (c) => c.text(await m.metrics(), 200, { 'content-type': m.contentType }))
  }
  if (o.witness) app.route('/witness', o.witness)
  if (o.revocations) app.route('/revocations', o.revocations)

  // Reads never open a log (LogManager.published): anonymous traffic costs no open-log slot.
  const published = async (space: string) => (SPACE_DID.test(space) ? o.logs.published(space) : undefined)

  // The log explorer (explorer.ts): GET / and GET /logs/<space>/, a static page verifying in the browser.
  app.route('/', explorerRoutes(SPACE_DID))

  app.get('/logs/:space/head', async (c) => {
    const p = await published(c.req.param('space'))
    if (!p) return c.json({ error: 'unknown log' }, 404)
    return c.json(
      {
        logId: p.id,
        origin: p.origin,
        vkey: o.logVkey(p.origin),
        treeSize: p.checkpoint.size,
        rootHash: encodeBase64(p.checkpoint.rootHash),
        checkpoint: p.checkpoint.note,
        integratedSize: await p.integratedSize(),
        ...(o.uploadStatus ? { upload: await o.uploadStatus(p.id) } : {}),
      },
      200,
      { 'cache-control': 'no-cache' },
    )
  })

  // JSON for tools: entries with their leaf hashes, and lookup by leaf or content hash (read-routes.ts).
  app.route(
    '/logs/:space',
    readRoutes({
      published: (c) => published(c.req.param('space') ?? ''),
      index: o.entryIndex,
      maxEntries: o.entriesPageMax ?? DEFAULT_ENTRIES_PAGE_MAX,
      maxBytes: o.entriesPageBytes ?? DEFAULT_ENTRIES_PAGE_BYTES,
    }),
  )

  // checkpoint, tiles and entry bundles: the same routes as the revocation log's (tile-routes.ts).
  app.route('/logs/:space', tileRoutes({ published: (c) => published(c.req.param('space') ?? ''), missing: { checkpoint: 'unknown log\n', tile: 'unknown log\n' } }))

  app.notFound((c) => c.text('not found\n', 404))
  app.onError((err, c) => {
    // Named refusals of the log manager (log-manager.ts): the damage was logged when found.
    if (err.name === 'LogUnavailable') return c.text(`log unavailable: ${err.message}\n`, 503)
    if (err.name === 'TooManyOpenLogs') return c.text('too many open logs; retry later\n', 503, { 'retry-after': '1' })
    // The PostgreSQL backend (src/storage/postgres): the database cannot be reached, or another instance is writing the log.
    if (err.name === 'DatabaseUnavailable') return c.text('database unavailable; retry later\n', 503, { 'retry-after': '1' })
    if (err.name === 'LeaseHeld') return c.text('the log is being written by another instance; retry later\n', 503, { 'retry-after': '1' })
    o.onError?.(err)
    return c.text('internal error\n', 500)
  })
  return app
}

/**
 * The peer's IP address from the TCP socket (never from a header a client could forge), or
 * undefined when the app runs without a socket (`app.request()` in tests).
 */
export function clientAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address
  } catch {
    return undefined
  }
}
