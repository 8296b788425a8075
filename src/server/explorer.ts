/**
 * The log explorer's routes (docs/auditing.md "Explorer", docs/wire.md): `GET /` (the list of logs
 * and the witness policy) and `GET /logs/<space>/` (one log) answer the same static page,
 * `explorer/index.html`, whose ES-module script (`GET /explorer/explorer.js`, `/explorer/tlog.js`)
 * chooses the view from the URL and verifies everything in the browser from the public tiles.
 *
 * The files are read once when the app is built (a fixed list of four small files, so memory is
 * bounded by the package itself) and served from memory; no request touches the disk or a log.
 * The page is sent with a strict Content-Security-Policy: scripts and styles from this origin
 * only, no inline code, no frames, no forms; `connect-src` allows http(s) anywhere because the
 * page reads a copy of a log from any tile root (`?base=`, e.g. a Storacha gateway).
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Hono } from 'hono'

/** The page's Content-Security-Policy (see the module comment). */
export const EXPLORER_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' https: http:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/** The explorer's files by name, with their content types. */
const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'explorer.js': 'text/javascript; charset=utf-8',
  'tlog.js': 'text/javascript; charset=utf-8',
  'explorer.css': 'text/css; charset=utf-8',
}

/** Cache-Control of the page and its assets: revalidated at most every 5 minutes (they change only with the service's version). */
const ASSET_CACHE = 'public, max-age=300'

/** Headers every explorer response carries. */
const COMMON = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' }

/**
 * The directory holding the explorer's files: `explorer/` at the package root, found from this
 * module whether it runs from `src/server/` (tests) or `dist/src/server/` (the built package).
 * Undefined when neither exists (then the routes answer 404).
 */
function explorerDir(): string | undefined {
  for (const up of ['../../explorer/', '../../../explorer/']) {
    const dir = fileURLToPath(new URL(up, import.meta.url))
    try {
      readFileSync(dir + 'index.html')
      return dir
    } catch {
      // not here
    }
  }
  return undefined
}

/**
 * The explorer routes as a Hono sub-app to mount at `/`: `GET /`, `GET /logs/:space/` (only for a
 * did:key space id, matched by `space`; anything else is 404; without the slash, 301 to it) and
 * `GET /explorer/<file>` for the files above. The files are read once, here.
 */
export function explorerRoutes(space: RegExp): Hono {
  const app = new Hono()
  const dir = explorerDir()
  const files = new Map<string, Uint8Array>()
  if (dir) for (const name of Object.keys(FILES)) files.set(name, new Uint8Array(readFileSync(dir + name)))
  const page = () => {
    const body = files.get('index.html')
    if (!body) return new Response('explorer not installed\n', { status: 404 })
    return new Response(body, { headers: { 'content-type': FILES['index.html']!, 'cache-control': ASSET_CACHE, 'content-security-policy': EXPLORER_CSP, ...COMMON } })
  }
  app.get('/', () => page())
  app.get('/logs/:space/', (c) => (space.test(c.req.param('space')) ? page() : c.text('not found\n', 404)))
  // Without the trailing slash, the page's relative URLs (`head`, `checkpoint`, `tile/…`) would miss the log.
  app.get('/logs/:space', (c) => (space.test(c.req.param('space')) ? c.redirect(`/logs/${c.req.param('space')}/`, 301) : c.text('not found\n', 404)))
  app.get('/explorer/:file', (c) => {
    const name = c.req.param('file')
    const body = name === 'index.html' ? undefined : files.get(name)
    if (!body) return c.text('not found\n', 404)
    return c.body(new Uint8Array(body), 200, { 'content-type': FILES[name]!, 'cache-control': ASSET_CACHE, ...COMMON })
  })
  return app
}
