// The HTTP floor of bench/throughput.js: a Hono app over @hono/node-server (as ucanlog's) that
// reads each POST body and sends it back. Prints `echo serving on <url>`.
import { serve } from '@hono/node-server'
import { Hono } from 'hono'

const app = new Hono()
app.post('/rpc', async (c) => new Response(await c.req.arrayBuffer(), { status: 200, headers: { 'content-type': 'application/octet-stream' } }))
const http = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
  process.stdout.write(`echo serving on http://127.0.0.1:${info.port}\n  service DID: none\n`)
})
process.on('SIGTERM', () => http.close(() => process.exit(0)))
