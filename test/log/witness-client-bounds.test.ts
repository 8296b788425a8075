/**
 * The log's witness client (src/log/witness-client.ts) reads a bounded witness answer and reports a
 * failing witness once per failure episode: a 200 whose body is longer than
 * MAX_WITNESS_RESPONSE_BYTES (valid cosignature lines padded, so only the bound refuses it) is
 * WitnessResponseTooLarge, not counted; `onWitnessFailure` marks the first failed round of an episode
 * (`episodeStart`), every later one not, and `onWitnessRecovered` fires once when the witness cosigns
 * again. A network failure names its cause (ECONNRESET).
 */
import { createServer } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { MAX_WITNESS_RESPONSE_BYTES, WitnessClient } from '../../src/log/witness-client.js'
import { ed25519Cosigner, ed25519Signer, formatCheckpoint, formatSignatureLine, parseNote, parsePolicy, signNote } from '../../src/tlog/index.js'
import { closeServer, listenOnLoopback } from '../helpers/loopback.js'

const ORIGIN = 'ucanlog.test/logs/witness-bounds'
const LOG = ed25519Signer(ORIGIN, new Uint8Array(32).fill(1))
const KEY = ed25519Cosigner('k.example', new Uint8Array(32).fill(30))
const TIME = 1_700_000_000
const checkpoint = (size: number) => signNote(formatCheckpoint({ origin: ORIGIN, size, rootHash: new Uint8Array(32).fill(size), extension: '' }), [LOG])
const cosignature = (body: string) => formatSignatureLine(KEY.cosign(parseNote(body.slice(body.indexOf('\n\n') + 2)).text, TIME))
const prove = async () => [new Uint8Array(32)]

const cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

/** A witness on 127.0.0.1 whose n-th answer (0-based) is `answer(n, requestBody)`: a 200 body, or 'reset'. */
async function witness(answer: (n: number, body: string) => string | 'reset'): Promise<string> {
  let n = 0
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString('utf8')))
    req.on('end', () => {
      const a = answer(n++, body)
      if (a === 'reset') return void req.socket.resetAndDestroy()
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(a)
    })
  })
  const url = await listenOnLoopback(server)
  cleanup.push(() => closeServer(server))
  return url
}

describe('WitnessClient: bounded answers, failure episodes', () => {
  it('a 200 longer than MAX_WITNESS_RESPONSE_BYTES is WitnessResponseTooLarge and not counted', async () => {
    // Valid cosignature lines, repeated past the bound: without the bound they would verify.
    const url = await witness((_, body) => cosignature(body).repeat(Math.ceil((MAX_WITNESS_RESPONSE_BYTES + 1) / cosignature(body).length)))
    const failures: { message: string; episodeStart: boolean }[] = []
    const c = new WitnessClient({ policy: parsePolicy(`witness k ${KEY.vkey} ${url}\nquorum k\n`), onWitnessFailure: (e) => failures.push(e) })
    const r = await c.cosign(checkpoint(1), 1, prove)
    expect(r.satisfied).toBe(false)
    expect(r.cosigned.size).toBe(0)
    expect(failures).toEqual([expect.objectContaining({ name: 'k', url: `${url}/`, episodeStart: true, message: `WitnessResponseTooLarge: witness response has more than ${MAX_WITNESS_RESPONSE_BYTES} bytes` })])
  })

  it('an answer of exactly one cosignature line is well within the bound', async () => {
    const url = await witness((_, body) => cosignature(body))
    const c = new WitnessClient({ policy: parsePolicy(`witness k ${KEY.vkey} ${url}\nquorum k\n`) })
    expect((await c.cosign(checkpoint(1), 1, prove)).satisfied).toBe(true)
  })

  it('reports the start of a failure episode once, every failed round, and the recovery once', async () => {
    // rounds 0-2 reset, 3-4 honest, 5 garbage
    const url = await witness((n, body) => (n < 3 ? 'reset' : n < 5 ? cosignature(body) : 'garbage\n'))
    const events: string[] = []
    const c = new WitnessClient({
      policy: parsePolicy(`witness k ${KEY.vkey} ${url}\nquorum k\n`),
      onWitnessFailure: (e) => events.push(`${e.episodeStart ? 'start' : 'again'} ${e.message}`),
      onWitnessRecovered: (e) => events.push(`recovered ${e.name}`),
    })
    for (let size = 1; size <= 6; size++) await c.cosign(checkpoint(size), size, prove)
    expect(events).toHaveLength(5)
    expect(events[0]).toMatch(/^start fetch failed: (ECONNRESET|UND_ERR_SOCKET)/)
    expect(events[1]).toMatch(/^again fetch failed/)
    expect(events[2]).toMatch(/^again fetch failed/)
    expect(events[3]).toBe('recovered k')
    expect(events[4]).toMatch(/^start /)
  })
})
