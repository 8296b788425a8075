/**
 * JSON read routes of a space log for tools (issue 13, docs/wire.md, docs/auditing.md "Read API"):
 *
 * - `GET /logs/<space>/entries?start=N&limit=M` → `{ size, start, next, entries: [{ index, leafHash,
 *   size, data }] }`: entries of the published tree only (`size` = the published checkpoint's),
 *   at most `maxEntries` and `maxBytes` of entry bytes per page (at least one entry when any is
 *   left); `next` is where the next page starts.
 * - `GET /logs/<space>/lookup?leafHash=B64 | sha256=B64|HEX` → `{ size, indexes, truncated }`: the
 *   indexes of the published entries with that RFC 6962 leaf hash or SHA-256 content hash
 *   (src/server/entry-index.ts), at most `maxResults`.
 * - `GET /logs/<space>/history?limit=N` (1..{@link MAX_HISTORY_LIMIT}, default
 *   {@link DEFAULT_HISTORY_LIMIT}) → `{ size, points: [{ size, rootHash, time }] }`: the log's
 *   published checkpoints (src/server/checkpoint-history.ts; `time` in Unix seconds of
 *   publication), evenly sampled over the kept points, oldest first — the service's unsigned
 *   claim, for the explorer's chart.
 *
 * Every parameter is validated before any file is read; hashes in base64 (standard, as the rest of
 * the wire format) or, for `sha256`, 64 hex digits (what `sha256sum` prints).
 */
import { type Context, Hono } from 'hono'
import { HASH_SIZE, encodeBase64, leafHash } from '../tlog/index.js'
import type { PublishedView } from '../log/log-manager.js'
import { type EntryIndex, IndexCatchingUpError, type LookupKind } from './entry-index.js'
import { CHECKPOINT_CACHE } from './tile-routes.js'
import { DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT } from './checkpoint-history.js'

/** Default most entries per `/entries` page. */
export const DEFAULT_ENTRIES_PAGE_MAX = 1000
/** Default most entry bytes per `/entries` page (≥ 65535, the largest entry, so a page always progresses); the JSON is ~4/3 of it plus ~100 B an entry. */
export const DEFAULT_ENTRIES_PAGE_BYTES = 1 << 20

/** Options of {@link readRoutes}. */
export interface ReadRoutesOptions {
  /** The published view of the log the request is for (`c.req.param('space')`), undefined when unknown. */
  published(c: Context): Promise<PublishedView | undefined>
  /** The lookup index (and the checkpoint history it holds); without it `/lookup` and `/history` are 404. */
  index?: EntryIndex
  /** Most entries per page, ≥ 1. */
  maxEntries: number
  /** Most entry bytes per page, ≥ 65535. */
  maxBytes: number
}

/** The `/entries` and `/lookup` routes (see the module comment), to mount at `/logs/:space`. */
export function readRoutes(o: ReadRoutesOptions): Hono {
  const app = new Hono()
  app.get('/entries', async (c) => {
    const start = nonNegative(c.req.query('start') ?? '0')
    const limit = nonNegative(c.req.query('limit') ?? String(o.maxEntries))
    if (start === undefined || limit === undefined) return c.json({ error: 'start and limit must be integers ≥ 0' }, 400)
    const p = await o.published(c)
    if (!p) return c.json({ error: 'unknown log' }, 404)
    const size = p.checkpoint.size
    const want = Math.min(limit, o.maxEntries, Math.max(0, size - start))
    const entries = want === 0 ? [] : await p.read(start, want, o.maxBytes)
    return c.json(
      {
        size,
        start,
        next: start + entries.length,
        entries: entries.map((e, k) => ({ index: start + k, leafHash: encodeBase64(leafHash(e)), size: e.length, data: encodeBase64(e) })),
      },
      200,
      { 'cache-control': CHECKPOINT_CACHE },
    )
  })
  app.get('/lookup', async (c) => {
    const index = o.index
    if (!index) return c.json({ error: 'lookup is not enabled' }, 404)
    const q = c.req.query()
    const given = (['leafHash', 'sha256'] as const).filter((k) => q[k] !== undefined)
    if (given.length !== 1) return c.json({ error: 'give exactly one of leafHash= and sha256=' }, 400)
    const kind: LookupKind = given[0]!
    const hash = parseHash(q[kind]!, kind === 'sha256')
    if (!hash) return c.json({ error: `${kind} must be ${HASH_SIZE} bytes in base64${kind === 'sha256' ? ' or 64 hex digits' : ''}` }, 400)
    const p = await o.published(c)
    if (!p) return c.json({ error: 'unknown log' }, 404)
    try {
      const a = await index.lookup(p, kind, hash)
      return c.json({ size: p.checkpoint.size, ...a }, 200, { 'cache-control': CHECKPOINT_CACHE })
    } catch (err) {
      if (err instanceof IndexCatchingUpError) {
        return c.json({ error: err.message, indexed: err.indexed, size: err.size }, 503, { 'retry-after': '1', 'cache-control': 'no-store' })
      }
      throw err
    }
  })
  app.get('/history', async (c) => {
    const history = o.index?.history
    if (!history) return c.json({ error: 'history is not enabled' }, 404)
    const limit = nonNegative(c.req.query('limit') ?? String(DEFAULT_HISTORY_LIMIT))
    if (limit === undefined || limit < 1 || limit > MAX_HISTORY_LIMIT) return c.json({ error: `limit must be an integer 1..${MAX_HISTORY_LIMIT}` }, 400)
    const p = await o.published(c)
    if (!p) return c.json({ error: 'unknown log' }, 404)
    const size = p.checkpoint.size
    const points = history.sample(p.id, limit, size).map((x) => ({ size: x.size, rootHash: encodeBase64(x.rootHash), time: x.time }))
    return c.json({ size, points }, 200, { 'cache-control': CHECKPOINT_CACHE })
  })
  return app
}

/** A decimal integer 0..2^53−1, else undefined. */
function nonNegative(s: string): number | undefined {
  if (!/^\d{1,16}$/.test(s)) return undefined
  const n = Number(s)
  return Number.isSafeInteger(n) ? n : undefined
}

/** A 32-byte hash from standard or URL-safe base64 (padded or not), or 64 hex digits when `hex`; undefined otherwise. */
export function parseHash(s: string, hex: boolean): Uint8Array | undefined {
  if (hex && /^[0-9a-fA-F]{64}$/.test(s)) return new Uint8Array(Buffer.from(s, 'hex'))
  // A '+' not percent-encoded arrives as a space (application/x-www-form-urlencoded).
  const b64 = s.replace(/ /g, '+').replace(/-/g, '+').replace(/_/g, '/')
  if (!/^[A-Za-z0-9+/]{43}=?$/.test(b64)) return undefined
  const b = Buffer.from(b64, 'base64')
  return b.length === HASH_SIZE ? new Uint8Array(b) : undefined
}
