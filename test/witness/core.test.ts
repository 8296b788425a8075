/**
 * The witness core (witness/witness.ts) called directly, one check at a time: each refusal with its
 * exact status and body (c2sp.org/tlog-witness v1 §add-checkpoint), the exact framing bounds, the
 * clock, and the store answers that must never end in a cosignature. Written from Stryker's
 * survivors (issue 9); every test names the check it guards.
 */
import { beforeEach, describe, expect, it } from 'vitest'
import { cosignatureVerifier } from '../../src/tlog/cosignature.js'
import { MalformedKeyError, openNote } from '../../src/tlog/note.js'
import { MAX_ADD_CHECKPOINT_BODY, Witness } from '../../witness/index.js'
import type { WitnessLog, WitnessStore } from '../../witness/index.js'
import { CP1, CP3, LOG, note, PROOF_1_3, WITNESS } from '../vectors/litewitness.js'
import { CheckedStore, litewitnessStore, request, signedCheckpoint, witnessSeed } from './helpers.js'

const TEXT = 'text/plain; charset=utf-8'
const EMPTY = '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='
const H = 'KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='
const enc = (s: string) => new TextEncoder().encode(s)
const T = 1700000000

describe('add-checkpoint refusals, each with its own body', () => {
  let store: CheckedStore
  let witness: Witness
  const call = (body: string | Uint8Array) => witness.addCheckpoint(typeof body === 'string' ? enc(body) : body)
  const refused = async (body: string | Uint8Array, status: number, message: string) => {
    const before = store.inner.getLog(LOG.origin)
    expect(await call(body)).toEqual({ status, contentType: TEXT, body: message + '\n' })
    expect(store.inner.getLog(LOG.origin)).toEqual(before) // nothing recorded
  }

  beforeEach(async () => {
    store = new CheckedStore(litewitnessStore())
    witness = new Witness({ name: WITNESS.name, seed: witnessSeed, store, now: () => T })
    expect((await call(request(0, [], note(CP1)))).status).toBe(200)
  })

  const good = request(1, PROOF_1_3, note(CP3))

  it('framing: blank line, UTF-8, "old" line, proof lines (400)', async () => {
    await refused(`old 1\n${PROOF_1_3.join('\n')}\n`, 400, 'invalid input: no blank line')
    await refused('old 1\n', 400, 'invalid input: no blank line')
    await refused(Uint8Array.from([...enc('old 1\n'), 0xc3, ...enc(`\n\n${note(CP3)}`)]), 400, 'invalid input: not UTF-8')
    await refused(Uint8Array.from([...enc(good.slice(0, -3)), 0xff, 0x3d, 0x0a]), 400, 'invalid input: not UTF-8')
    for (const old of ['01', '+1', '-1', ' 1', '1 ', '', '9007199254740992', '99999999999999999']) {
      await refused(good.replace('old 1', `old ${old}`), 400, 'invalid input: bad "old" line')
    }
    await refused(good.replace('old 1', 'Old 1'), 400, 'invalid input: bad "old" line')
    await refused(good.replace('old 1', 'xold 1'), 400, 'invalid input: bad "old" line')
    // A blank line at the very start is a blank line (an empty "old" line), not a missing one.
    await refused(`\n\n${note(CP3)}`, 400, 'invalid input: bad "old" line')
    await refused(request(1, Array(64).fill(H), note(CP3)), 400, 'invalid input: more than 63 proof lines')
    await refused(good.replace(PROOF_1_3[0]!, PROOF_1_3[0]!.slice(0, -1)), 400, 'invalid input: bad proof hash')
  })

  it('decodes UTF-8 exactly: a BOM is kept, so it is part of the "old" line or of the origin', async () => {
    await refused('\ufeff' + good, 400, 'invalid input: bad "old" line')
    await refused(request(0, [], '\ufeff' + note(CP3)), 404, 'unknown log')
  })

  it('the largest "old" is 2^53−1 (16 digits): it parses, then is larger than the checkpoint (400)', async () => {
    await refused(good.replace('old 1', `old ${Number.MAX_SAFE_INTEGER}`), 400, 'invalid input: old size is larger than the checkpoint size')
  })

  it('63 proof lines parse (and then fail the proof check, 422)', async () => {
    await refused(request(1, Array(63).fill(H), note(CP3)), 422, 'bad consistency proof')
  })

  it(`bodies up to ${MAX_ADD_CHECKPOINT_BODY} bytes are read; one byte more is 413`, async () => {
    const base = enc(good)
    const padded = (n: number) => {
      const b = new Uint8Array(n)
      b.set(base)
      b.fill(0x78, base.length) // "x": makes the note malformed, so the size check is what answers first
      return b
    }
    await refused(padded(MAX_ADD_CHECKPOINT_BODY), 400, 'invalid input: malformed note')
    await refused(padded(MAX_ADD_CHECKPOINT_BODY + 1), 413, 'request body too large')
  })

  it('note and checkpoint: malformed (400), unsigned (403), unknown origin (404)', async () => {
    await refused(good + 'junk\n', 400, 'invalid input: malformed note')
    await refused(request(1, PROOF_1_3, signedCheckpoint('03', CP3.text.split('\n')[2]!)), 400, 'invalid input: malformed checkpoint')
    await refused(request(5, [], note(CP3)), 400, 'invalid input: old size is larger than the checkpoint size')
    await refused(request(1, PROOF_1_3, `${CP3.text.replace('RcCI', 'RcCJ')}\n${CP3.sig}`), 403, 'invalid signature')
    await refused(request(0, [], signedCheckpoint(1, H, 'example.com/unknown')), 404, 'unknown log')
  })

  it('the origin is the note up to its first newline; a note without one has the empty origin (404, not 400)', async () => {
    // With the origin taken as "all but the last character", this would name the known log and
    // fail later as a malformed note.
    await refused(`old 1\n\n${LOG.origin}x`, 404, 'unknown log')
  })

  it('consistency (422), each refusal by name', async () => {
    await refused(request(1, [], note(CP3)), 422, 'bad consistency proof')
    const fresh = new CheckedStore(litewitnessStore())
    witness = new Witness({ name: WITNESS.name, seed: witnessSeed, store: fresh, now: () => T })
    store = fresh
    await refused(request(0, PROOF_1_3, note(CP3)), 422, 'bad consistency proof: old size 0 takes no proof')
    await refused(request(0, [], signedCheckpoint(0, H)), 422, 'bad consistency proof: empty tree with a non-empty root')
    expect((await call(request(0, [], signedCheckpoint(0, EMPTY)))).status).toBe(200)
  })
})

/** A store whose answers a test scripts, for states a real store never reaches. */
function scriptedStore(log: WitnessLog, cas: boolean, after: WitnessLog | undefined): WitnessStore & { casCalls: number } {
  let reads = 0
  const s = {
    casCalls: 0,
    getLog: () => (reads++ === 0 ? log : after),
    compareAndSwap: () => (s.casCalls++, cas),
    addLog: () => false,
    addKey: () => false,
    deleteKey: () => false,
    listLogs: () => [log],
  }
  return s
}

const atSize1 = (over: Partial<WitnessLog> = {}): WitnessLog => ({
  origin: LOG.origin,
  treeSize: 1,
  rootHash: Buffer.from(CP1.text.split('\n')[2]!, 'base64'),
  checkpoint: note(CP1),
  keys: [LOG.vkey],
  ...over,
})

describe('store answers that must not end in a cosignature', () => {
  const body = enc(request(1, PROOF_1_3, note(CP3)))

  it('a lost compare-and-swap answers 409 with the size stored now, or 404 if the log is gone', async () => {
    const moved = scriptedStore(atSize1(), false, atSize1({ treeSize: 7 }))
    expect(await new Witness({ name: WITNESS.name, seed: witnessSeed, store: moved, now: () => T }).addCheckpoint(body)).toEqual({
      status: 409,
      contentType: 'text/x.tlog.size',
      body: '7\n',
    })
    const gone = scriptedStore(atSize1(), false, undefined)
    expect(await new Witness({ name: WITNESS.name, seed: witnessSeed, store: gone, now: () => T }).addCheckpoint(body)).toEqual({
      status: 404,
      contentType: TEXT,
      body: 'unknown log\n',
    })
  })

  it('a stored root that is not 32 bytes is an error (500), never "consistent"', async () => {
    const corrupt = scriptedStore(atSize1({ rootHash: new Uint8Array(31) }), true, undefined)
    await expect(new Witness({ name: WITNESS.name, seed: witnessSeed, store: corrupt, now: () => T }).addCheckpoint(body)).rejects.toThrow(
      new RangeError('oldRoot must be a 32-byte hash'),
    )
    expect(corrupt.casCalls).toBe(0)
  })

  it('a stored log key that does not parse is an error (500), not a 403 or 400', async () => {
    const bad = scriptedStore(atSize1({ keys: ['not a vkey'] }), true, undefined)
    await expect(new Witness({ name: WITNESS.name, seed: witnessSeed, store: bad, now: () => T }).addCheckpoint(body)).rejects.toThrow(MalformedKeyError)
    expect(bad.casCalls).toBe(0)
  })
})

describe('the cosignature clock', () => {
  const body = enc(request(1, PROOF_1_3, note(CP3)))
  const cosignAt = async (now: (() => number) | undefined) => {
    const store = scriptedStore(atSize1(), true, undefined)
    const w = new Witness({ name: WITNESS.name, seed: witnessSeed, store, ...(now ? { now } : {}) })
    const r = await w.addCheckpoint(body)
    expect(r).toMatchObject({ status: 200, contentType: TEXT })
    const v = cosignatureVerifier(w.vkey)
    return v.timestamp(openNote(note(CP3) + r.body, [v]).verified[0]!.signature)
  }

  it('rounds fractional seconds down', async () => {
    expect(await cosignAt(() => T + 0.999)).toBe(T)
    expect(await cosignAt(() => 0)).toBe(0)
  })

  it('defaults to the system clock in Unix seconds', async () => {
    const before = Math.floor(Date.now() / 1000)
    const t = await cosignAt(undefined)
    expect(t).toBeGreaterThanOrEqual(before)
    expect(t).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000))
  })

  it('a clock before 1970, NaN or beyond 2^53 s throws before the compare-and-swap', async () => {
    for (const bad of [-1, -0.5, NaN, 2 ** 53]) {
      const store = scriptedStore(atSize1(), true, undefined)
      const w = new Witness({ name: WITNESS.name, seed: witnessSeed, store, now: () => bad })
      await expect(w.addCheckpoint(body), String(bad)).rejects.toThrow(new RangeError(`witness clock returned ${Math.floor(bad)}`))
      expect(store.casCalls).toBe(0)
    }
  })
})
