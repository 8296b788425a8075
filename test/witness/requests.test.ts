/**
 * The witness's answers to every class of request (c2sp.org/tlog-witness v1 §add-checkpoint):
 * malformed inputs (400/413, state unchanged), unknown and disabled logs (404), signatures (403),
 * trust on first use and consistency (422), conflicts (409).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { cosignatureVerifier } from '../../src/tlog/cosignature.js'
import { ed25519Signer, openNote, signNote } from '../../src/tlog/note.js'
import { SqliteWitnessStore, Witness } from '../../witness/index.js'
import { CP1, CP3, LOG, note, PROOF_1_3, WITNESS } from '../vectors/litewitness.js'
import { CheckedStore, expectResponse, litewitnessStore, request, signedCheckpoint, startWitness, witnessSeed } from './helpers.js'
import type { Running } from './helpers.js'

const TEXT = 'text/plain; charset=utf-8'
const EMPTY = '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='
const H = 'KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='
const enc = (s: string) => new TextEncoder().encode(s)

describe('malformed requests over HTTP (400/413/404, state unchanged)', () => {
  // A fresh witness at size 1 for every test (one test moves it to size 3).
  let w: Running
  let store: CheckedStore
  beforeEach(async () => {
    store = new CheckedStore(litewitnessStore())
    w = await startWitness(store)
    await expectResponse(await w.post(request(0, [], note(CP1))), 200, TEXT)
  })
  afterEach(async () => {
    await w.close()
    store.inner.close()
  })

  const good = request(1, PROOF_1_3, note(CP3))
  const cases: [string, string | Uint8Array, number][] = [
    ['empty body', '', 400],
    ['missing blank line', `old 1\n${PROOF_1_3.join('\n')}\n`, 400],
    ['missing blank line before the note', good.replace(`${PROOF_1_3[1]}\n\n`, `${PROOF_1_3[1]}\n`), 400],
    ['leading zeros in old', good.replace('old 1', 'old 01'), 400],
    ['sign in old', good.replace('old 1', 'old +1'), 400],
    ['space padding in old', good.replace('old 1', 'old  1'), 400],
    ['trailing space in old', good.replace('old 1', 'old 1 '), 400],
    ['negative old', good.replace('old 1', 'old -1'), 400],
    ['hex old', good.replace('old 1', 'old 0x1'), 400],
    ['old without size', good.replace('old 1', 'old'), 400],
    ['wrong keyword', good.replace('old 1', 'Old 1'), 400],
    ['old beyond 2^53', good.replace('old 1', 'old 9007199254740992'), 400],
    ['CR after old', good.replace('old 1\n', 'old 1\r\n'), 400],
    ['CR in the note', good.slice(0, -1) + '\r\n', 400],
    ['bad base64 proof line', good.replace(PROOF_1_3[0]!, PROOF_1_3[0]!.replace('Kg', 'K_')), 400],
    ['unpadded proof line', good.replace(PROOF_1_3[0]!, PROOF_1_3[0]!.slice(0, -1)), 400],
    ['non-canonical proof line', good.replace(PROOF_1_3[0]!, PROOF_1_3[0]!.slice(0, -2) + 'B='), 400],
    ['31-byte proof hash', good.replace(PROOF_1_3[0]!, 'KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=='), 400],
    // An empty line ends the proof, so the rest is read as a note whose origin is a hash: unknown.
    ['empty line inside the proof', good.replace(`${PROOF_1_3[0]}\n`, `${PROOF_1_3[0]}\n\n`), 404],
    ['64 proof lines', request(1, Array(64).fill(H), note(CP3)), 400],
    ['note not UTF-8', Uint8Array.from([...enc(good.slice(0, -3)), 0xff, 0x3d, 0x0a]), 400],
    ['head not UTF-8', Uint8Array.from([...enc('old 1\n'), 0xc3, ...enc(`\n\n${note(CP3)}`)]), 400],
    ['note with a junk line after the signatures', good + 'junk\n', 400],
    ['note without a final newline', good.slice(0, -1), 400],
    ['non-canonical checkpoint size (log-signed)', request(1, PROOF_1_3, signedCheckpoint('03', CP3.text.split('\n')[2]!)), 400],
    ['old larger than the checkpoint size', request(5, [], note(CP3)), 400],
    ['11 KiB body', request(1, PROOF_1_3, note(CP3)) + 'x'.repeat(11 * 1024), 413],
  ]
  for (const [what, body, status] of cases) {
    it(`${what} → ${status}`, async () => {
      const before = store.inner.getLog(LOG.origin)
      const res = await w.post(body)
      expect(res.status).toBe(status)
      expect(res.headers.get('content-type')).toBe(TEXT)
      await res.arrayBuffer()
      expect(store.inner.getLog(LOG.origin)).toEqual(before)
    })
  }

  it('64 proof lines are refused but 63 parse (and then fail the proof check)', async () => {
    await expectResponse(await w.post(request(1, Array(63).fill(H), note(CP3))), 422, TEXT)
  })

  it('a body of exactly 10 KiB is accepted; one byte more is 413', async () => {
    const base = request(1, PROOF_1_3, note(CP3))
    // Pad with an unknown-key signature line (ignored by the witness) to reach the exact size.
    const padded = (total: number) => {
      const remaining = total - enc(base).length - enc('— ' + ' ' + '\n').length // name + base64
      const b64 = remaining - 3 - ((remaining - 3) % 4)
      return base + `— ${'pad'.padEnd(remaining - b64, 'd')} ${'A'.repeat(b64)}\n`
    }
    expect(enc(padded(10 * 1024)).length).toBe(10 * 1024)
    expect(enc(padded(10 * 1024 + 1)).length).toBe(10 * 1024 + 1)
    await expectResponse(await w.post(padded(10 * 1024 + 1)), 413, TEXT)
    await expectResponse(await w.post(padded(10 * 1024)), 200, TEXT)
  })
})

describe('logs, keys, signatures and first use', () => {
  let store: CheckedStore
  let witness: Witness
  const call = async (body: string) => witness.addCheckpoint(enc(body))

  beforeEach(() => {
    store = new CheckedStore(litewitnessStore())
    witness = new Witness({ name: WITNESS.name, seed: witnessSeed, store, now: () => 1700000000 })
  })

  it('answers 404 for unknown logs and for logs without keys', async () => {
    expect(await call(request(0, [], signedCheckpoint(1, H, 'example.com/unknown')))).toMatchObject({ status: 404, body: 'unknown log\n' })
    store.addLog('example.com/keyless')
    expect(await call(request(0, [], signedCheckpoint(1, H, 'example.com/keyless')))).toMatchObject({ status: 404 })
    expect(store.deleteKey(LOG.origin, LOG.vkey)).toBe(true)
    expect(await call(request(0, [], note(CP1)))).toMatchObject({ status: 404 })
    expect(store.inner.getLog(LOG.origin)?.treeSize).toBe(0)
  })

  it('answers 403 when no log key signed, or a known key signed wrongly', async () => {
    const stranger = ed25519Signer(LOG.origin, new Uint8Array(32).fill(9)) // same name, other key
    expect(await call(request(0, [], signNote(CP1.text, [stranger])))).toMatchObject({ status: 403, body: 'invalid signature\n' })
    const wrongText = CP1.text.replace('KgAA', 'KgAB')
    expect(await call(request(0, [], `${wrongText}\n${CP1.sig}`))).toMatchObject({ status: 403 })
    // A valid log signature next to an unknown one is accepted; unknown signatures are ignored.
    expect(await call(request(0, [], signNote(CP1.text, [stranger]) + CP1.sig))).toMatchObject({ status: 200 })
  })

  it('trusts on first use but rejects a proof with old 0 (422)', async () => {
    expect(await call(request(0, PROOF_1_3, note(CP3)))).toMatchObject({ status: 422 })
    expect(store.inner.getLog(LOG.origin)?.treeSize).toBe(0)
    expect(await call(request(0, [], note(CP3)))).toMatchObject({ status: 200 })
    expect(store.inner.getLog(LOG.origin)?.treeSize).toBe(3)
  })

  it('accepts a size-0 checkpoint only with the empty-tree root (422 otherwise)', async () => {
    expect(await call(request(0, [], signedCheckpoint(0, H)))).toMatchObject({ status: 422 })
    const r = await call(request(0, [], signedCheckpoint(0, EMPTY)))
    expect(r.status).toBe(200)
    expect(await call(request(0, [], note(CP1)))).toMatchObject({ status: 200 }) // 0 → 1 needs no proof
  })

  it('answers 422 for the same size with a different root', async () => {
    expect((await call(request(0, [], note(CP3)))).status).toBe(200)
    const fork = signedCheckpoint(3, H)
    expect(await call(request(3, [], fork))).toMatchObject({ status: 422, body: 'bad consistency proof\n' })
    expect(store.inner.getLog(LOG.origin)?.checkpoint).toBe(note(CP3))
  })

  it('cosigns checkpoints with extension lines, as received', async () => {
    const cp = signedCheckpoint(1, CP1.text.split('\n')[2]!, LOG.origin, 'extension line\n')
    const r = await call(request(0, [], cp))
    expect(r.status).toBe(200)
    const n = openNote(cp + r.body, [cosignatureVerifier(witness.vkey)])
    expect(n.text).toContain('extension line\n')
  })

  it('answers 409 with the stored size for a stale old size, and stores the full note', async () => {
    expect((await call(request(0, [], note(CP1)))).status).toBe(200)
    expect(await call(request(0, [], note(CP3)))).toEqual({ status: 409, contentType: 'text/x.tlog.size', body: '1\n' })
    expect(store.inner.getLog(LOG.origin)?.checkpoint).toBe(note(CP1))
  })

  it('uses the injected clock (Unix seconds) for the cosignature timestamp', async () => {
    const r = await call(request(0, [], note(CP1)))
    const n = openNote(note(CP1) + r.body, [cosignatureVerifier(WITNESS.vkey)])
    expect(cosignatureVerifier(WITNESS.vkey).timestamp(n.verified[0]!.signature)).toBe(1700000000)
  })

  it('refuses an invalid witness name or seed', () => {
    const s = new SqliteWitnessStore(':memory:')
    expect(() => new Witness({ name: 'bad name', seed: witnessSeed, store: s })).toThrow(/invalid witness name/)
    expect(() => new Witness({ name: 'w', seed: witnessSeed.subarray(0, 31), store: s })).toThrow(/32 bytes/)
    s.close()
  })
})
