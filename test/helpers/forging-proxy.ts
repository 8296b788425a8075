/**
 * A forging HTTP proxy for fault injection: it stands in front of a real ucanlog service, passes
 * every GET through, and answers every RPC POST with the service's receipts re-issued — signed with
 * the service's own key, as a compromised service would sign them — after `alter` changed each ok
 * result. Only what a client verifies beyond the receipt's signature can catch such a lie
 * (src/client/verify-append.ts).
 */
import { type IncomingMessage, type Server, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Message, Receipt } from '@ucanto/core'
import type * as API from '@ucanto/interface'
import * as CAR from '@ucanto/transport/car'
import { loadServiceKey } from '../../src/server/keys.js'
import type { AppendResult } from '../../src/ucan/wire.js'

/** A running forging proxy: its base URL (use it as the service URL) and how to stop it. */
export interface ForgingProxy {
  url: string
  close(): Promise<void>
}

/**
 * Starts a proxy on 127.0.0.1 (ephemeral port) in front of `svc` (its `url`, and its `dataDir`
 * holding `service.key`). Every receipt with an ok result gets `{ ok: alter(result) }`; refusals
 * pass unchanged (re-signed). `alter = (r) => r` gives honest re-signed receipts.
 */
export async function startForgingProxy(svc: { url: string; dataDir: string }, alter: (r: AppendResult) => AppendResult): Promise<ForgingProxy> {
  const { signer } = await loadServiceKey(join(svc.dataDir, 'service.key'))
  const server: Server = createServer(async (req, res) => {
    const upstream = await fetch(new URL(req.url!, svc.url), {
      method: req.method,
      headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => ['content-type', 'accept'].includes(k))) as Record<string, string>,
      ...(req.method === 'POST' && { body: await bodyOf(req) }),
    })
    let bytes: Uint8Array = new Uint8Array(await upstream.arrayBuffer())
    if (req.method === 'POST' && upstream.ok) {
      const message = (await CAR.response.decode({ headers: Object.fromEntries(upstream.headers), body: bytes } as never)) as API.AgentMessage
      const receipts = await Promise.all(
        [...message.receipts.values()].map(async (r) => {
          const out = r.out as { ok?: AppendResult }
          const result = out.ok ? { ok: alter(out.ok) } : out
          return Receipt.issue({ issuer: signer, ran: (r.ran as { link(): API.Link }).link() as never, result: result as never })
        }),
      )
      bytes = CAR.response.encode(await Message.build({ receipts: receipts as never })).body
    }
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' }).end(Buffer.from(bytes))
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((ok) => server.close(() => ok())) }
}

async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}
