// The "stock" side of bench/throughput.js: bench/stock-service.js's minimal ucanto server over HTTP,
// verifying through node:crypto (ucanlog's principal parser). Answers a signed receipt
// `{ ok: { index: 0 } }` per invocation. Hono over @hono/node-server, as ucanlog.
//
//   node bench/stock-server.js          prints `stock serving on <url>\n  service DID: <did>` and serves
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { ed25519 } from '@ucanto/principal'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createStockServer } from './stock-service.js'

const DIST = resolve(process.env.BENCH_DIST ?? new URL('../dist', import.meta.url).pathname)
const { TlogAppend, createFastSigner, createPrincipalParser } = await import(pathToFileURL(`${DIST}/src/ucan/index.js`).href)

const signer = createFastSigner(await ed25519.generate())
const server = createStockServer({ signer, principal: createPrincipalParser(), TlogAppend, result: () => ({ index: 0 }) })

const app = new Hono()
app.post('/rpc', async (c) => {
  const body = new Uint8Array(await c.req.arrayBuffer())
  const headers = Object.fromEntries(c.req.raw.headers)
  const r = await server.request({ headers, body })
  return new Response(r.body, { status: r.status ?? 200, headers: r.headers })
})
const http = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
  process.stdout.write(`stock serving on http://127.0.0.1:${info.port}\n  service DID: ${signer.did()}\n`)
})
process.on('SIGTERM', () => http.close(() => process.exit(0)))
