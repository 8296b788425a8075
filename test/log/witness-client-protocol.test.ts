/**
 * The log's witness client (src/log/witness-client.ts) against scripted witnesses on loopback HTTP
 * (fault-injecting fakes holding a real cosigning key): which answers resync the old size (only a
 * 409 with Content-Type text/x.tlog.size and a canonical decimal body), which are permanent errors
 * for the round (and how they are reported), the retry bound, the submission URL under a path, the
 * early return when nothing needs asking, and one consistency proof per old size per round.
 */
import { createServer } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { WitnessClient } from '../../src/log/witness-client.js'
import { type Hash, ed25519Cosigner, ed25519Signer, formatCheckpoint, formatSignatureLine, parseNote, parsePolicy, signNote } from '../../src/tlog/index.js'
import { closeServer, listenOnLoopback } from '../helpers/loopback.js'

const ORIGIN = 'ucanlog.test/logs/witness-protocol'
const LOG = ed25519Signer(ORIGIN, new Uint8Array(32).fill(1))
const KEY = ed25519Cosigner('k.example', new Uint8Array(32).fill(30))
const KEY2 = ed25519Cosigner('k2.example', new Uint8Array(32).fill(31))
const TIME = 1_700_000_000
const checkpoint = (size: number) => signNote(formatCheckpoint({ origin: ORIGIN, size, rootHash: new Uint8Array(32).fill(size), extension: '' }), [LOG])
const cosignature = (body: string, key = KEY) => formatSignatureLine(key.cosign(parseNote(body.slice(body.indexOf('\n\n') + 2)).text, TIME))

interface Answer {
  status: number
  type?: string
  body: string
}
interface Scripted {
  url: string
  /** Every request: its path and body. */
  requests: { path: string; body: string }[]
}

const cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

/** A witness on 127.0.0.1 answering the n-th request (0-based) with `answer(n, body, path)`. */
async function scripted(answer: (n: number, body: string, path: string) => Answer): Promise<Scripted> {
  const s: Scripted = { url: '', requests: [] }
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString('utf8')))
    req.on('end', () => {
      const path = new URL(req.url!, 'http://x').pathname
      const a = answer(s.requests.length, body, path)
      s.requests.push({ path, body })
      res.writeHead(a.status, a.type ? { 'content-type': a.type } : {}).end(a.body)
    })
  })
  s.url = await listenOnLoopback(server)
  cleanup.push(() => closeServer(server))
  return s
}

const ok = (body: string): Answer => ({ status: 200, type: 'text/plain; charset=utf-8', body: cosignature(body) })
const size409 = (n: number | string, type = 'text/x.tlog.size'): Answer => ({ status: 409, type, body: `${n}\n` })
const oldLine = (body: string) => body.split('\n')[0]

function client(urls: string[] | string, quorum = 'quorum k\n', extra: object = {}) {
  const errors: [string, string][] = []
  const list = Array.isArray(urls) ? urls : [urls]
  const policy = parsePolicy(list.map((u, i) => `witness ${i === 0 ? 'k' : `k${i + 1}`} ${(i === 0 ? KEY : KEY2).vkey}${u ? ` ${u}` : ''}\n`).join('') + quorum)
  return { errors, c: new WitnessClient({ policy, onWitnessError: (url, m) => errors.push([url, m]), ...extra }) }
}

/** A consistency prover that records the old sizes asked and returns `n` dummy hashes. */
function prover(n = 2) {
  const asked: number[] = []
  const prove = async (old: number): Promise<Hash[]> => {
    asked.push(old)
    return Array.from({ length: n }, (_, i) => new Uint8Array(32).fill(i + 1))
  }
  return { asked, prove }
}

describe('WitnessClient: resync and permanent errors', () => {
  it('a 409 text/x.tlog.size resyncs: the retry carries the witness size and a proof from it', async () => {
    const w = await scripted((n, body) => (n === 0 ? size409(13) : ok(body)))
    const { c, errors } = client(w.url)
    const p = prover()
    const r = await c.cosign(checkpoint(20), 20, p.prove)
    expect(r.satisfied).toBe(true)
    expect(w.requests.map((q) => oldLine(q.body))).toEqual(['old 0', 'old 13'])
    expect(p.asked).toEqual([13])
    expect(errors).toEqual([])
  })

  it('the media type is matched without parameters, spaces or case', async () => {
    const w = await scripted((n, body) => (n === 0 ? size409(3, 'Text/X.TLOG.Size ; charset=utf-8') : ok(body)))
    const r = await client(w.url).c.cosign(checkpoint(5), 5, prover().prove)
    expect(r.satisfied).toBe(true)
    expect(w.requests.map((q) => oldLine(q.body))).toEqual(['old 0', 'old 3'])
  })

  it('a 409 without that media type (a same-size root mismatch) is a permanent error: one request', async () => {
    const w = await scripted(() => size409(3, 'text/plain'))
    const { c, errors } = client(w.url)
    expect((await c.cosign(checkpoint(5), 5, prover().prove)).satisfied).toBe(false)
    expect(w.requests).toHaveLength(1)
    expect(errors).toEqual([[`${w.url}/`, 'witness answered 409: 3']])
  })

  it('another status with the size media type is not a resync: permanent error', async () => {
    const w = await scripted(() => ({ status: 400, type: 'text/x.tlog.size', body: '3\n' }))
    const { c, errors } = client(w.url)
    await c.cosign(checkpoint(5), 5, prover().prove)
    expect(w.requests).toHaveLength(1)
    expect(errors).toEqual([[`${w.url}/`, 'witness answered 400: 3']])
  })

  it('a malformed size body is a permanent error', async () => {
    for (const body of ['03', 'x3', '3x', '', '12345678901234567']) {
      const w = await scripted(() => size409(body))
      const { c, errors } = client(w.url)
      await c.cosign(checkpoint(5), 5, prover().prove)
      expect(w.requests, body).toHaveLength(1)
      expect(errors, body).toEqual([[`${w.url}/`, 'malformed text/x.tlog.size body']])
    }
  })

  it('403 and 404 say the witness does not know the log; other statuses name the status; bodies trimmed to 100 characters', async () => {
    const long = 'x'.repeat(150)
    for (const [status, body, want] of [
      [403, ' forbidden \n', 'witness does not know this log (403: forbidden)'],
      [404, `${long}\n`, `witness does not know this log (404: ${'x'.repeat(100)})`],
      [500, `  ${long}`, `witness answered 500: ${'x'.repeat(100)}`],
      [503, ' busy \n', 'witness answered 503: busy'],
    ] as const) {
      const w = await scripted(() => ({ status, type: 'text/plain', body }))
      const { c, errors } = client(w.url)
      await c.cosign(checkpoint(5), 5, prover().prove)
      expect(w.requests).toHaveLength(1)
      expect(errors).toEqual([[`${w.url}/`, want]])
    }
  })

  it('a witness that keeps answering 409 is asked at most 3 times per round', async () => {
    const w = await scripted(() => size409(0))
    const { c, errors } = client(w.url)
    expect((await c.cosign(checkpoint(5), 5, prover().prove)).satisfied).toBe(false)
    expect(w.requests).toHaveLength(3)
    expect(errors).toEqual([[`${w.url}/`, 'witness kept answering 409']])
  })

  it('a 200 body not ending in a newline is refused as such', async () => {
    const w = await scripted((_, body) => ({ status: 200, body: cosignature(body).slice(0, -1) }))
    const { c, errors } = client(w.url)
    expect((await c.cosign(checkpoint(5), 5, prover().prove)).satisfied).toBe(false)
    expect(errors).toEqual([[`${w.url}/`, 'cosignature response does not end in a newline']])
  })

  it('after cosigning size 5, a checkpoint of a smaller size is sent with old 0 (the log cannot prove from 5)', async () => {
    const w = await scripted((_, body) => ok(body))
    const { c } = client(w.url)
    const p = prover()
    await c.cosign(checkpoint(5), 5, p.prove)
    await c.cosign(checkpoint(3), 3, p.prove)
    expect(w.requests.map((q) => oldLine(q.body))).toEqual(['old 0', 'old 0'])
    expect(p.asked).toEqual([])
  })
})

describe('WitnessClient: URLs, early return and shared proofs', () => {
  it('a witness URL with a path gets add-checkpoint below that path', async () => {
    const w = await scripted((_, body, path) => (path === '/w/add-checkpoint' ? ok(body) : { status: 404, body: 'wrong path' }))
    const r = await client(`${w.url}/w`).c.cosign(checkpoint(5), 5, prover().prove)
    expect(r.satisfied).toBe(true)
    expect(w.requests.map((q) => q.path)).toEqual(['/w/add-checkpoint'])
  })

  it('a policy URL that is not a URL fails every request and is reported once, with a trailing slash', async () => {
    const { c, errors } = client(['notaurl', 'notaurl/'], 'group g any k k2\nquorum g\n')
    expect((await c.cosign(checkpoint(5), 5, prover().prove)).satisfied).toBe(false)
    expect(errors.map(([u]) => u)).toEqual(['notaurl/'])
  })

  it('nothing to ask: witnesses without a URL, or a quorum already met (not greedy) → no request, the checkpoint as is', async () => {
    let fetches = 0
    const counting = (async () => {
      fetches++
      throw new Error('no request expected')
    }) as unknown as typeof fetch
    const cp = checkpoint(5)
    const noUrl = client('', 'quorum k\n', { fetch: counting })
    expect(await noUrl.c.cosign(cp, 5, prover().prove)).toEqual({ note: cp, cosigned: new Set(), satisfied: false })
    const w = await scripted((_, body) => ok(body))
    const none = client(w.url, 'quorum none\n', { fetch: counting })
    expect(await none.c.cosign(cp, 5, prover().prove)).toEqual({ note: cp, cosigned: new Set(), satisfied: true })
    expect(fetches).toBe(0)
    expect([...noUrl.errors, ...none.errors]).toEqual([])
    // Greedy: asks even when "quorum none" is met, and keeps the cosignature.
    const greedy = client(w.url, 'quorum none\n', { greedy: true })
    const r = await greedy.c.cosign(cp, 5, prover().prove)
    expect(r).toMatchObject({ cosigned: new Set(['k']), satisfied: true })
    expect(r.note).toBe(cp + cosignature(`old 0\n\n${cp}`))
  })

  it('two witnesses at the same old size share one consistency proof per round', async () => {
    const answer = (n: number, body: string) => (n === 0 ? size409(3) : ok(body))
    const [a, b] = [await scripted(answer), await scripted((n, body) => (n === 0 ? size409(3) : { status: 200, body: cosignature(body, KEY2) }))]
    const { c } = client([a.url, b.url], 'group g all k k2\nquorum g\n')
    const p = prover()
    const r = await c.cosign(checkpoint(8), 8, p.prove)
    expect(r.satisfied).toBe(true)
    expect(p.asked).toEqual([3])
  })

  it('two policy witnesses at one URL: each line is checked against each, with no error callback given', async () => {
    // The URL answers with k2's cosignature only: k has none (reported nowhere), k2 is counted.
    const w = await scripted((_, body) => ({ status: 200, body: cosignature(body, KEY2) }))
    const policy = parsePolicy(`witness k ${KEY.vkey} ${w.url}\nwitness k2 ${KEY2.vkey} ${w.url}/\nquorum k2\n`)
    const r = await new WitnessClient({ policy }).cosign(checkpoint(5), 5, prover().prove)
    expect(w.requests).toHaveLength(1)
    expect(r).toMatchObject({ cosigned: new Set(['k2']), satisfied: true })
  })
})
