// src/server/body-limit.ts over real HTTP (@hono/node-server on loopback): the same 413 decisions
// as hono's bodyLimit for a Content-Length body, a chunked body and none, and a Content-Length
// body read without building the WHATWG Request (the reason the module exists).
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rpcBodyLimit } from '../../src/server/body-limit.js'

const MAX = 1000

/** What the handler saw of each request it ran. */
const seen: { bytes: number; materialized: boolean }[] = []
let server: ReturnType<typeof serve>
let port = 0

beforeAll(async () => {
  const app = new Hono()
  app.post('/', rpcBodyLimit({ maxSize: MAX, onError: (c) => c.text('too large\n', 413) }), async (c) => {
    const body = new Uint8Array(await c.req.arrayBuffer())
    // @hono/node-server's lightweight request holds the node:http request (its "incomingKey") and,
    // once the full Request is built, that Request (its "requestCache"); hono's counting middleware
    // replaces it with a new Request.
    const symbols = Object.getOwnPropertySymbols(c.req.raw)
    const lightweight = symbols.some((s) => s.description === 'incomingKey')
    const built = symbols.some((s) => s.description === 'requestCache' && (c.req.raw as never)[s] !== undefined)
    const materialized = !lightweight || built
    seen.push({ bytes: body.byteLength, materialized })
    return c.text(`got ${body.byteLength} ${body.reduce((a, b) => (a + b) % 65536, 0)}\n`)
  })
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
      port = (info as AddressInfo).port
      resolve()
    })
  })
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

/** POSTs `chunks` with a Content-Length (`chunked` false) or chunked; resolves with status and text. */
function post(chunks: Uint8Array[], chunked: boolean): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const length = chunks.reduce((n, c) => n + c.byteLength, 0)
    const req = httpRequest(
      { host: '127.0.0.1', port, method: 'POST', path: '/', headers: chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(length) } },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      },
    )
    req.on('error', reject)
    for (const c of chunks) req.write(c)
    req.end()
  })
}

const bytes = (n: number, seed = 7) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff)
const sum = (chunks: Uint8Array[]) => chunks.reduce((a, c) => c.reduce((x, b) => (x + b) % 65536, a), 0)

describe('rpcBodyLimit', () => {
  for (const chunked of [false, true]) {
    const how = chunked ? 'chunked' : 'Content-Length'
    it(`${how}: a body of exactly the cap reaches the handler whole`, async () => {
      const chunks = [bytes(400), bytes(600, 3)]
      const before = seen.length
      const res = await post(chunks, chunked)
      expect(res).toEqual({ status: 200, text: `got ${MAX} ${sum(chunks)}\n` })
      expect(seen.length).toBe(before + 1)
    })
    it(`${how}: one byte over the cap is refused 413 and the handler never runs`, async () => {
      const before = seen.length
      const res = await post([bytes(500), bytes(501)], chunked)
      expect(res.status).toBe(413)
      expect(res.text).toBe('too large\n')
      expect(seen.length).toBe(before)
    })
    it(`${how}: an empty body reaches the handler`, async () => {
      const res = await post([], chunked)
      expect(res).toEqual({ status: 200, text: 'got 0 0\n' })
    })
  }

  it('a Content-Length body is read without building the WHATWG Request; a chunked one through it', async () => {
    seen.length = 0
    await post([bytes(10)], false)
    await post([bytes(10)], true)
    expect(seen).toEqual([
      { bytes: 10, materialized: false },
      { bytes: 10, materialized: true },
    ])
  })

  it('refuses a cap that is not a non-negative integer', () => {
    expect(() => rpcBodyLimit({ maxSize: -1, onError: (c) => c.text('', 413) })).toThrow(RangeError)
    expect(() => rpcBodyLimit({ maxSize: 1.5, onError: (c) => c.text('', 413) })).toThrow(RangeError)
  })
})
