/**
 * The read routes of c2sp.org/tlog-tiles for one log, as a Hono sub-app: `GET checkpoint`,
 * `GET tile/<L>/<N>[.p/<W>]` (hash tiles) and `GET tile/entries/<N>[.p/<W>]` (entry bundles). The
 * server mounts it at `/logs/:space` for every space log and at `/revocations` for the revocation
 * log (docs/wire.md).
 *
 * Only what the published checkpoint covers is served: a file past it may belong to a batch that
 * was never committed. Full tiles and bundles are cached forever ({@link IMMUTABLE}), partial ones
 * a minute ({@link PARTIAL_CACHE}), the checkpoint two seconds ({@link CHECKPOINT_CACHE}).
 */
import { type Context, Hono } from 'hono'
import { TILE_WIDTH, entryBundlePath, parseTilePath, tilePath, tileWidth } from '../tlog/index.js'

/** Cache-Control of tiles and entry bundles: a published tile never changes (c2sp.org/tlog-tiles). */
export const IMMUTABLE = 'public, max-age=31536000, immutable'
/**
 * Cache-Control of partial tiles and bundles (`.p/<W>`): their bytes never change either, but they
 * are superseded by wider ones as the log grows and a log may delete them once the full tile exists
 * (c2sp.org/tlog-tiles), so caches keep them a minute.
 */
export const PARTIAL_CACHE = 'public, max-age=60'
/** Cache-Control of the checkpoint: it changes with every publication. */
export const CHECKPOINT_CACHE = 'public, max-age=2'

/** What the tile routes serve of one log: its published checkpoint and read access to its files. */
export interface PublishedFiles {
  /** The published checkpoint: tree size (entries) and the cosigned note text. */
  checkpoint: { size: number; note: string }
  /** Reads a file by its tlog-tiles path; undefined when it does not exist. */
  readFile(path: string): Promise<Uint8Array | undefined>
}

/** Options of {@link tileRoutes}. */
export interface TileRoutesOptions {
  /**
   * The published state of the log this request is for (`c.req.param()` holds the mount's
   * parameters), undefined when the log is unknown or has published nothing. May throw: the
   * error reaches the host app's error handler (e.g. LogUnavailable → 503).
   */
  published(c: Context): Promise<PublishedFiles | undefined>
  /** The 404 bodies when `published` is undefined, for `checkpoint` and for `tile/…`. */
  missing: { checkpoint: string; tile: string }
}

/**
 * The tile routes of one log (see the module comment). A malformed tile path is 400 before the
 * log is looked up; a tile or bundle wider than the published tree has is 404.
 */
export function tileRoutes(o: TileRoutesOptions): Hono {
  const app = new Hono()
  app.get('/checkpoint', async (c) => {
    const p = await o.published(c)
    if (!p) return c.text(o.missing.checkpoint, 404)
    return c.text(p.checkpoint.note, 200, { 'cache-control': CHECKPOINT_CACHE, 'content-type': 'text/plain; charset=utf-8' })
  })
  app.get('/tile/*', async (c) => {
    let parsed: ReturnType<typeof parseTilePath>
    try {
      parsed = parseTilePath(tileSubpath(c))
    } catch {
      return c.text('malformed tile path\n', 400)
    }
    const p = await o.published(c)
    if (!p) return c.text(o.missing.tile, 404)
    const size = p.checkpoint.size
    let path: string
    let full: boolean
    if (parsed.kind === 'tile') {
      const t = parsed.tile
      if (t.width > tileWidth(t.level, t.index, size)) return c.text('tile not found\n', 404)
      path = tilePath(t)
      full = t.width === TILE_WIDTH
    } else {
      if (parsed.width > tileWidth(0, parsed.index, size)) return c.text('entry bundle not found\n', 404)
      path = entryBundlePath(parsed.index, parsed.width)
      full = parsed.width === TILE_WIDTH
    }
    const bytes = await p.readFile(path)
    if (!bytes) return c.text('not found\n', 404)
    return c.body(new Uint8Array(bytes), 200, { 'content-type': 'application/octet-stream', 'cache-control': full ? IMMUTABLE : PARTIAL_CACHE })
  })
  return app
}

/**
 * The request path from the `tile` segment on (`tile/0/000`, `tile/entries/000.p/5`), wherever the
 * sub-app is mounted: the matched route (`/logs/:space/tile/*`) says how many segments precede it.
 */
function tileSubpath(c: Context): string {
  const at = c.req.routePath.split('/').indexOf('tile')
  return c.req.path.split('/').slice(at).join('/')
}
