// The "stock" side of bench/throughput.js: a minimal ucanto server (no log, no replay guard, no
// revocations, no rate limits) that accepts ucanlog's own `tlog/append` invocations and checks the
// same chain with ucanto's validator: the invocation's signature (Server.provide's access(), the
// agent may invoke on any space), then `claim()` of `space/blob/add` over the Agent→Service
// delegation of `nb.delegation` with its embedded Space→Agent proof, rooted at the space — three
// Ed25519 verifies through node:crypto (ucanlog's principal parser). Answers a signed receipt
// `{ ok: { index: 0 } }` per invocation. Hono over @hono/node-server, as ucanlog.
//
//   node bench/stock-server.js          prints `stock serving on <url>\n  service DID: <did>` and serves
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import * as Server from '@ucanto/server'
import { Delegation } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import { CAR } from '@ucanto/transport'
import { capability, DID } from '@ucanto/validator'
import { base64 } from 'multiformats/bases/base64'
import * as Link from 'multiformats/link'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const DIST = resolve(process.env.BENCH_DIST ?? new URL('../dist', import.meta.url).pathname)
const { TlogAppend, createFastSigner, createPrincipalParser } = await import(pathToFileURL(`${DIST}/src/ucan/index.js`).href)

/** `space/blob/add` without caveats: what an Agent→Service delegation grants (any blob on the space). */
const BlobAdd = capability({ can: 'space/blob/add', with: DID.match({ method: 'key' }) })

const signer = createFastSigner(await ed25519.generate())
const principal = createPrincipalParser()

const service = {
  tlog: {
    append: Server.provide(TlogAppend, async ({ capability: cap, invocation }) => {
      const link = Link.parse(cap.nb.delegation, base64)
      const extracted = await Delegation.extract(link.multihash.digest)
      if (extracted.error) return { error: extracted.error }
      const delegation = extracted.ok
      if (delegation.issuer.did() !== invocation.issuer.did() || delegation.audience.did() !== signer.did()) {
        return { error: { name: 'InvalidDelegation', message: 'not from the invoker to this service' } }
      }
      const claimed = await Server.claim(BlobAdd, [delegation], {
        authority: signer,
        principal,
        validateAuthorization: () => ({ ok: {} }),
      })
      if (claimed.error) return { error: claimed.error }
      if (claimed.ok.capability.with !== cap.with) return { error: { name: 'WrongSpace', message: 'the delegation is for another space' } }
      return { ok: { index: 0 } }
    }),
  },
}

const server = Server.create({
  id: signer,
  service,
  codec: CAR.inbound,
  principal,
  canIssue: () => true, // the authority is checked on nb.delegation, as ucanlog does
  validateAuthorization: () => ({ ok: {} }),
})

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
