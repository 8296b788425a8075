/**
 * `client.append` when the service's answer does not check out: a forging HTTP proxy in front of the
 * real service (and its bundled witness) rewrites one receipt's inclusion proof. The batch stops —
 * no entry is sent after the invocations in flight end — and the call throws the named error,
 * never returning the forged result as appended.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Message, Receipt } from '@ucanto/core'
import * as CAR from '@ucanto/transport/car'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InvalidProofError, createClient, createKey, delegateSpaceToAgent, formatDelegation } from '../../src/client/index.js'
import { startTestService } from '../e2e/helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>
let svc: Svc

beforeAll(async () => {
  svc = await startTestService()
})
afterAll(async () => {
  await svc?.stop()
})

/**
 * A proxy to `target` that forwards every request and, for the `forge`-th RPC request (1-based),
 * answers a receipt whose ok result has its first inclusion-proof hash replaced (re-signed by a
 * stranger: the client does not check receipt signatures yet). Counts RPC requests.
 */
async function forgingProxy(target: string, forge: number): Promise<{ url: string; rpcRequests(): number; close(): Promise<void> }> {
  let count = 0
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      try {
        const rpc = req.method === 'POST'
        const n = rpc ? ++count : 0
        const upstream = await fetch(new URL(req.url ?? '/', target), { method: req.method, headers: { 'content-type': req.headers['content-type'] ?? '' }, ...(rpc && { body: Buffer.concat(chunks) }) })
        let body: Uint8Array = new Uint8Array(await upstream.arrayBuffer())
        if (n === forge && upstream.ok) {
          const message = await CAR.response.decode({ headers: Object.fromEntries(upstream.headers), body })
          const [original] = [...message.receipts.values()]
          const ok = original!.out.ok as { inclusionProof: string[] }
          const forged = await Receipt.issue({
            issuer: await createKey(),
            ran: original!.ran,
            result: { ok: { ...ok, inclusionProof: [Buffer.alloc(32, 7).toString('base64'), ...ok.inclusionProof.slice(1)] } },
          })
          body = CAR.response.encode(await Message.build({ receipts: [forged as never] })).body
        }
        res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' })
        res.end(body)
      } catch (err) {
        res.writeHead(502).end(String(err))
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    rpcRequests: () => count,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

describe('append refuses a result that does not check out', () => {
  it('the forged proof of the 2nd entry throws InvalidProofError and nothing more is sent (concurrency 1)', async () => {
    const proxy = await forgingProxy(svc.url, 2)
    try {
      const space = await createKey()
      const agent = await createKey()
      const client = await createClient({ url: proxy.url, agent, proof: await formatDelegation(await delegateSpaceToAgent({ space, agent })), serviceDID: svc.did as `did:key:${string}` })
      // At least two entries in the tree, so the forged hash is one the proof uses.
      const entries = Array.from({ length: 6 }, (_, i) => new Uint8Array([i + 1]))
      const err = await client.append(entries, { concurrency: 1 }).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(InvalidProofError)
      expect(proxy.rpcRequests()).toBe(2)
    } finally {
      await proxy.close()
    }
  })

  it('with 3 in flight, the batch stops short of the end and throws', async () => {
    const proxy = await forgingProxy(svc.url, 4)
    try {
      const space = await createKey()
      const agent = await createKey()
      const client = await createClient({ url: proxy.url, agent, proof: await formatDelegation(await delegateSpaceToAgent({ space, agent })), serviceDID: svc.did as `did:key:${string}` })
      // Warm the log so every later proof is non-empty.
      expect((await client.append([new Uint8Array([0]), new Uint8Array([1]), new Uint8Array([2])], { concurrency: 1 })).every((o) => o.ok)).toBe(true)
      const entries = Array.from({ length: 30 }, (_, i) => new Uint8Array([10 + i]))
      const err = await client.append(entries, { concurrency: 3 }).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(InvalidProofError)
      // The 30 entries were not all sent (how many went depends on the answers' timing: ≥ 1 forged).
      expect(proxy.rpcRequests()).toBeLessThan(3 + 30)
      expect(proxy.rpcRequests()).toBeGreaterThanOrEqual(4)
    } finally {
      await proxy.close()
    }
  })
})
