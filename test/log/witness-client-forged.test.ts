/**
 * The log's witness client (src/log/witness-client.ts) never counts a forged cosignature toward the
 * quorum: hostile witnesses on loopback HTTP (fault-injecting fakes, each holding the cosigning key of
 * its policy witness or an impostor's) answer 200 with a cosignature by the wrong key, with bad
 * signature bytes, over another checkpoint, over another origin, with a garbage body or an empty one.
 * Guards the `openNote(checkpoint + line, [w.verifier])` check: with only forged answers the quorum
 * is not met and the log publishes nothing; with one real witness (ours, on real HTTP) the quorum
 * it alone can meet is met, and the forged lines are ignored.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { afterEach, describe, expect, it } from 'vitest'
import { Log } from '../../src/log/log.js'
import { WitnessClient } from '../../src/log/witness-client.js'
import {
  type Cosigner,
  ed25519Cosigner,
  ed25519Signer,
  formatCheckpoint,
  formatSignatureLine,
  openNote,
  parseCheckpoint,
  parseNote,
  parsePolicy,
  signNote,
  cosignatureVerifier,
} from '../../src/tlog/index.js'
import { appendResultOf } from '../../src/ucan/wire.js'
import { SqliteWitnessStore, Witness, witnessApp } from '../../witness/index.js'
import { MemoryFiles } from '../helpers/memory-files.js'
import { closeServer } from '../helpers/loopback.js'

const ORIGIN = 'ucanlog.test/logs/witness-client'
const LOG = ed25519Signer(ORIGIN, new Uint8Array(32).fill(1))
const TIME = 1_700_000_000
const seed = (n: number) => new Uint8Array(32).fill(n)

/** How a hostile witness answers a well-formed add-checkpoint request (always with status 200). */
type Forgery = 'wrong-key' | 'wrong-key-claimed-id' | 'bad-signature' | 'other-checkpoint' | 'other-origin' | 'garbage' | 'empty'
const FORGERIES: Forgery[] = ['wrong-key', 'wrong-key-claimed-id', 'bad-signature', 'other-checkpoint', 'other-origin', 'garbage', 'empty']

const cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

function closing(server: Server | ReturnType<typeof serve>): () => Promise<void> {
  return () => closeServer(server)
}

/** Checkpoint text `text` with its size plus one (same origin, same root). */
const otherCheckpoint = (text: string) => {
  const cp = parseCheckpoint(text)
  return formatCheckpoint({ ...cp, size: cp.size + 1 })
}

/** The body of a forged 200 answer to a request for checkpoint text `text`, by a witness whose real key is `key`. */
function forge(kind: Forgery, key: Cosigner, text: string): string {
  const impostor = ed25519Cosigner(key.name, seed(200)) // same name, another key (so another key ID)
  switch (kind) {
    case 'wrong-key':
      return formatSignatureLine(impostor.cosign(text, TIME))
    case 'wrong-key-claimed-id':
      return formatSignatureLine({ ...impostor.cosign(text, TIME), keyId: key.keyId })
    case 'bad-signature': {
      const s = key.cosign(text, TIME)
      const sig = new Uint8Array(s.signature)
      sig[20]! ^= 1
      return formatSignatureLine({ ...s, signature: sig })
    }
    case 'other-checkpoint':
      return formatSignatureLine(key.cosign(otherCheckpoint(text), TIME))
    case 'other-origin':
      return formatSignatureLine(key.cosign(text.replace(ORIGIN, 'ucanlog.test/logs/another'), TIME))
    case 'garbage':
      return 'this is not a signature line\n'
    case 'empty':
      return ''
  }
}

/** A hostile witness on 127.0.0.1 answering every add-checkpoint with 200 and a `kind` forgery by `key`. */
async function startHostile(kind: Forgery, key: Cosigner): Promise<{ url: string; requests: number }> {
  const h = { url: '', requests: 0 }
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString('utf8')))
    req.on('end', () => {
      h.requests++
      const note = body.slice(body.indexOf('\n\n') + 2)
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(forge(kind, key, parseNote(note).text))
    })
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  cleanup.push(closing(server))
  h.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return h
}

/** A real witness of ours on 127.0.0.1 that knows the test log. */
async function startRealWitness(): Promise<{ url: string; vkey: string }> {
  const store = new SqliteWitnessStore(':memory:')
  store.addLog(ORIGIN)
  store.addKey(ORIGIN, LOG.vkey)
  const witness = new Witness({ name: 'real.example', seed: seed(50), store, now: () => TIME })
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: witnessApp(witness).fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s))
  })
  cleanup.push(async () => {
    await closing(server)()
    store.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, vkey: witness.vkey }
}

/** One hostile policy witness per forgery, `evil-<kind>`, each with its own real key (seed 20 + i). */
async function startHostiles(): Promise<{ name: string; vkey: string; url: string }[]> {
  return Promise.all(
    FORGERIES.map(async (kind, i) => {
      const key = ed25519Cosigner(`evil-${kind}.example`, seed(20 + i))
      return { name: `evil-${kind}`, vkey: key.vkey, url: (await startHostile(kind, key)).url }
    }),
  )
}

const policyOf = (ws: { name: string; vkey: string; url: string }[], quorum: string) =>
  parsePolicy(ws.map((w) => `witness ${w.name} ${w.vkey} ${w.url}\n`).join('') + quorum)

const checkpoint = (size: number) => signNote(formatCheckpoint({ origin: ORIGIN, size, rootHash: new Uint8Array(32).fill(size), extension: '' }), [LOG])
const noProof = async () => {
  throw new Error('no consistency proof expected: every witness starts at size 0')
}

describe('WitnessClient never counts a forged cosignature', () => {
  for (const [i, kind] of FORGERIES.entries()) {
    it(`a witness answering 200 with ${kind}: not counted, the quorum it alone could meet is not met, its failure reported`, async () => {
      const key = ed25519Cosigner('evil.example', seed(20 + i))
      const h = await startHostile(kind, key)
      const errors: string[] = []
      const client = new WitnessClient({ policy: policyOf([{ name: 'evil', vkey: key.vkey, url: h.url }], 'quorum evil\n'), onWitnessError: (_, m) => errors.push(m) })
      const cp = checkpoint(5)
      const r = await client.cosign(cp, 5, noProof)
      expect(h.requests).toBe(1)
      expect(r.satisfied).toBe(false)
      expect([...r.cosigned]).toEqual([])
      expect(r.note).toBe(cp) // no forged line reaches the published note
      expect(errors).toHaveLength(1)
      const want = { garbage: /^signature line does not start with "— "/, empty: /^cosignature response does not end in a newline$/ } as Partial<Record<Forgery, RegExp>>
      expect(errors[0]).toMatch(want[kind] ?? /^no valid cosignature from evil$/)
    })
  }

  it('a real witness plus every forgery (greedy): only the real one counts; 1-of-all is met, 2-of-all is not', async () => {
    const real = await startRealWitness()
    const evil = await startHostiles()
    const ws = [{ name: 'real', ...real }, ...evil]
    const names = ws.map((w) => w.name).join(' ')
    const any = new WitnessClient({ policy: policyOf(ws, `group g 1 ${names}\nquorum g\n`), greedy: true })
    const cp = checkpoint(5)
    const r = await any.cosign(cp, 5, noProof)
    expect(r.satisfied).toBe(true)
    expect([...r.cosigned]).toEqual(['real'])
    // The note carries the log's signature and exactly one cosignature: the real witness's, which verifies.
    const sigs = parseNote(r.note).signatures
    expect(sigs.map((s) => s.name)).toEqual([ORIGIN, 'real.example'])
    expect(openNote(r.note, [cosignatureVerifier(real.vkey)]).verified).toHaveLength(1)

    const two = new WitnessClient({ policy: policyOf(ws, `group g 2 ${names}\nquorum g\n`), greedy: true })
    // (A fresh client: the real witness answers 409 size 5, the client resyncs and it cosigns the same checkpoint again.)
    const r2 = await two.cosign(cp, 5, noProof)
    expect([...r2.cosigned]).toEqual(['real'])
    expect(r2.satisfied).toBe(false)
  })
})

describe('the log publishes no checkpoint on forged cosignatures alone', () => {
  const entry = (i: number) => new TextEncoder().encode(`entry ${i}`)

  it('with only forging witnesses, an append is durable but unpublished (no checkpoint file); with a real witness added, published with its cosignature only', async () => {
    const evil = await startHostiles()
    const names = evil.map((w) => w.name).join(' ')
    const files = new MemoryFiles()
    const forgedOnly = new WitnessClient({ policy: policyOf(evil, `group g 1 ${names}\nquorum g\n`), greedy: true })
    const log = await Log.open({ id: 'did:key:test', origin: ORIGIN, signer: LOG, files, witnesses: forgedOnly, batchMaxAgeMs: 1, publishRetryMs: 60_000 })
    const r = await log.append(entry(0))
    expect(appendResultOf(r)).toMatchObject({ index: 0, published: false, checkpoint: '' })
    expect(files.files.has('checkpoint')).toBe(false)
    expect(log.checkpoint).toBeUndefined()
    await log.close()

    const real = await startRealWitness()
    const ws = [{ name: 'real', ...real }, ...evil]
    const withReal = new WitnessClient({ policy: policyOf(ws, `group g 1 real ${names}\nquorum g\n`), greedy: true })
    const files2 = new MemoryFiles()
    const log2 = await Log.open({ id: 'did:key:test', origin: ORIGIN, signer: LOG, files: files2, witnesses: withReal, batchMaxAgeMs: 1 })
    const r2 = await log2.append(entry(0))
    expect(r2.published).toBe(true)
    const published = Buffer.from(files2.files.get('checkpoint')!).toString('utf8')
    expect(published).toBe(r2.published && r2.checkpoint.note)
    expect(parseNote(published).signatures.map((s) => s.name)).toEqual([ORIGIN, 'real.example'])
    expect(openNote(published, [cosignatureVerifier(real.vkey)]).verified).toHaveLength(1)
    await log2.close()
  })
})
