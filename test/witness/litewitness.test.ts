/**
 * The litewitness conformance sequence (torchwood cmd/litewitness/testdata/litewitness.txt, digest
 * §7.2) with its exact vectors (§11), against our witness over real HTTP on 127.0.0.1.
 * Deliberate differences from litewitness, per c2sp.org/tlog-witness and the project's issue:
 * unknown or disabled logs answer 404 (litewitness: 403), and the upstream "corrupted signature"
 * line is non-canonical base64, which we reject as malformed (400) before any signature check.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { cosignatureVerifier } from '../../src/tlog/cosignature.js'
import { ed25519Verifier, openNote } from '../../src/tlog/note.js'
import { CP1, CP3, CP3_BITFLIP_SIG, CP5, LOG, note, PROOF_1_3, PROOF_1_5, PROOF_3_5, WITNESS } from '../vectors/litewitness.js'
import { CheckedStore, expectResponse, litewitnessStore, request, startWitness } from './helpers.js'
import type { Running } from './helpers.js'

const TEXT = 'text/plain; charset=utf-8'
const SIZE = 'text/x.tlog.size'

describe('litewitness.txt sequence over HTTP', () => {
  // Each step gets a fresh witness and first replays the accepted steps before it (at), so no test
  // depends on another having run.
  let w: Running
  let store: CheckedStore
  beforeEach(async () => {
    store = new CheckedStore(litewitnessStore())
    w = await startWitness(store)
  })
  afterEach(async () => {
    await w.close()
    store.inner.close()
  })

  /** Brings the fresh witness to tree size `size` through the sequence's accepted steps (1, 6, 8). */
  const at = async (size: 1 | 3 | 5) => {
    await expectResponse(await w.post(request(0, [], note(CP1))), 200, TEXT)
    if (size >= 3) await expectResponse(await w.post(request(1, PROOF_1_3, note(CP3))), 200, TEXT)
    if (size >= 5) await expectResponse(await w.post(request(3, PROOF_3_5, note(CP5))), 200, TEXT)
    expect(store.inner.getLog(LOG.origin)?.treeSize).toBe(size)
  }

  const cosignatureOK = (body: string, cp: { text: string; sig: string }) => {
    const n = openNote(note(cp) + body, [ed25519Verifier(LOG.vkey), cosignatureVerifier(WITNESS.vkey)])
    expect(n.verified.map((s) => s.name)).toEqual([LOG.origin, WITNESS.name])
    expect(cosignatureVerifier(WITNESS.vkey).timestamp(n.verified[1]!.signature)).toBe(WITNESS.timestamp)
  }

  it('1. old 0 + checkpoint of size 1 → 200 (trust on first use)', async () => {
    const body = await expectResponse(await w.post(request(0, [], note(CP1))), 200, TEXT)
    expect(body).toMatch(/^— example\.com\/witness [A-Za-z0-9+/]{102}==\n$/)
    cosignatureOK(body, CP1)
    expect(store.inner.getLog(LOG.origin)).toMatchObject({ treeSize: 1, checkpoint: note(CP1) })
  })

  it('2. old 1 + proof + size 3 with a corrupted log signature → rejected', async () => {
    await at(1)
    // The upstream flip "…6go=" → "…6gx=" sets base64 padding bits: malformed for a strict parser.
    await expectResponse(await w.post(request(1, PROOF_1_3, `${CP3.text}\n${CP3_BITFLIP_SIG}`)), 400, TEXT, /invalid input/)
    // A canonical corruption reaches the signature check: 403 as in litewitness.
    await expectResponse(await w.post(request(1, PROOF_1_3, `${CP3.text}\n${CP3.sig.replace('6go=', '6gs=')}`)), 403, TEXT, 'invalid signature\n')
  })

  it('3. the size-3 checkpoint for an unknown origin (…562 → …563) → 404', async () => {
    await at(1)
    const unknown = note(CP3).replaceAll('e562', 'e563')
    await expectResponse(await w.post(request(1, PROOF_1_3, unknown)), 404, TEXT, 'unknown log\n')
  })

  it('4. old 1 without a proof → 422', async () => {
    await at(1)
    await expectResponse(await w.post(request(1, [], note(CP3))), 422, TEXT, /bad consistency proof/)
  })

  it('5. old 1 with a wrong proof → 422', async () => {
    await at(1)
    await expectResponse(await w.post(request(1, [...PROOF_1_3].reverse(), note(CP3))), 422, TEXT, /bad consistency proof/)
    await expectResponse(await w.post(request(1, PROOF_1_5, note(CP3))), 422, TEXT, /bad consistency proof/)
  })

  it('6. old 1 with the right proof → 200', async () => {
    await at(1)
    cosignatureOK(await expectResponse(await w.post(request(1, PROOF_1_3, note(CP3))), 200, TEXT), CP3)
    expect(store.inner.getLog(LOG.origin)?.treeSize).toBe(3)
  })

  it('7. old 1 + proof 1→5 + size 5 → 409 with the witness size', async () => {
    await at(3)
    await expectResponse(await w.post(request(1, PROOF_1_5, note(CP5))), 409, SIZE, '3\n')
  })

  it('8. old 3 + proof 3→5 + size 5 → 200, exactly the §5.3 cosignature at T=1679315147', async () => {
    await at(3)
    const body = await expectResponse(await w.post(request(3, PROOF_3_5, note(CP5))), 200, TEXT)
    expect(body).toBe(WITNESS.cp5CosigLine)
    expect(store.inner.getLog(LOG.origin)).toMatchObject({ treeSize: 5, checkpoint: note(CP5) })
  })

  it('9. old 0 with the size-5 checkpoint → 409 "5"', async () => {
    await at(5)
    await expectResponse(await w.post(request(0, [], note(CP5))), 409, SIZE, '5\n')
  })

  it('re-submitting the current checkpoint (old 5, size 5, no proof) is re-cosigned', async () => {
    await at(5)
    expect(await expectResponse(await w.post(request(5, [], note(CP5))), 200, TEXT)).toBe(WITNESS.cp5CosigLine)
  })
})
