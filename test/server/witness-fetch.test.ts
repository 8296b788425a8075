/**
 * The bundled witness reached in-process (src/server/witness-fetch.ts): the log's witness client
 * sends the same c2sp.org/tlog-witness add-checkpoint bytes to the witness's HTTP handler without a
 * socket, and still reaches every other witness over the network.
 */
import { describe, expect, it } from 'vitest'
import { WitnessClient } from '../../src/log/witness-client.js'
import { witnessFetch } from '../../src/server/witness-fetch.js'
import { decodeHash } from '../../src/tlog/encoding.js'
import { parsePolicy, verifiedWitnesses } from '../../src/tlog/policy.js'
import { SqliteWitnessStore, Witness, witnessApp } from '../../witness/index.js'
import { CP1, CP3, LOG, note, PROOF_1_3 } from '../vectors/litewitness.js'

const PREFIX = 'http://127.0.0.1:8787/witness'

/** A bundled witness that knows the litewitness log, and the requests its handler received. */
function bundled() {
  const store = new SqliteWitnessStore(':memory:')
  store.addLog(LOG.origin)
  store.addKey(LOG.origin, LOG.vkey)
  const witness = new Witness({ name: 'bundled.example', seed: new Uint8Array(32).fill(7), store, now: () => 1700000000 })
  const app = witnessApp(witness)
  const seen: { method: string; path: string; body: string }[] = []
  const handler = async (req: Request) => {
    seen.push({ method: req.method, path: new URL(req.url).pathname, body: await req.clone().text() })
    return app.fetch(req)
  }
  return { witness, store, handler, seen }
}

describe('witnessFetch', () => {
  it('the witness client cosigns through the bundled witness handler, no network involved', async () => {
    const b = bundled()
    const network = async (): Promise<Response> => {
      throw new Error('no network in this test')
    }
    const policy = parsePolicy(`witness bundled ${b.witness.vkey} ${PREFIX}\nquorum bundled\n`)
    const client = new WitnessClient({ policy, fetch: witnessFetch(PREFIX, b.handler, network) })
    const r1 = await client.cosign(note(CP1), 1, async () => [])
    expect(r1.satisfied).toBe(true)
    expect(verifiedWitnesses(policy, r1.note)).toEqual(new Set(['bundled']))
    const r3 = await client.cosign(note(CP3), 3, async () => PROOF_1_3.map(decodeHash))
    expect(r3.satisfied).toBe(true)
    // The protocol's bytes, on the witness's own route.
    expect(b.seen).toEqual([
      { method: 'POST', path: '/add-checkpoint', body: `old 0\n\n${note(CP1)}` },
      { method: 'POST', path: '/add-checkpoint', body: `old 1\n${PROOF_1_3.join('\n')}\n\n${note(CP3)}` },
    ])
    b.store.close()
  })

  it('sends any other URL to the network, and matches the prefix as the client spells it', async () => {
    const b = bundled()
    const sent: string[] = []
    const network = (async (input: string | URL | Request) => {
      sent.push(String(input instanceof Request ? input.url : input))
      return new Response('x')
    }) as typeof fetch
    const f = witnessFetch(PREFIX, b.handler, network)
    await f(new URL('http://witness.example/add-checkpoint'), { method: 'POST', body: 'x' })
    await f('http://127.0.0.1:8787/witnessed/add-checkpoint', { method: 'POST', body: 'x' })
    expect(sent).toEqual(['http://witness.example/add-checkpoint', 'http://127.0.0.1:8787/witnessed/add-checkpoint'])
    expect(b.seen).toEqual([])
    const res = await f(new URL('add-checkpoint', 'HTTP://127.0.0.1:8787/witness/'), { method: 'GET' })
    expect(res.status).toBe(405)
    expect(b.seen).toEqual([{ method: 'GET', path: '/add-checkpoint', body: '' }])
    b.store.close()
  })
})
