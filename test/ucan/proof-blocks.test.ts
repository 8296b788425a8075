// src/ucan/proof-blocks.ts through parseDelegation (delegation.ts): an agent's Space→Agent proof,
// embedded in every Agent→Service delegation it sends, is decoded once per thread; a block under
// the same CID with other bytes is never given the cached decoding; the cache keeps to its bound.
import { CarBufferReader } from '@ipld/car/buffer-reader'
import * as CarBufferWriter from '@ipld/car/buffer-writer'
import { afterEach, describe, expect, it } from 'vitest'
import type { API } from '@ucanto/core'
import { DEFAULT_PROOF_BLOCK_CACHE_BYTES, VIEW_FACTOR, proofBlockCacheBytes, setProofBlockCacheBytes } from '../../src/ucan/proof-blocks.js'
import { ENTRY_OVERHEAD_BYTES } from '../../src/storage/byte-lru.js'
import { formatDelegationBase64, parseDelegation } from '../../src/ucan/delegation.js'
import { delegateAgentToService, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { decodeBase64, encodeBase64 } from '../../src/tlog/encoding.js'

afterEach(() => setProofBlockCacheBytes(DEFAULT_PROOF_BLOCK_CACHE_BYTES))

/** `n` Agent→Service delegations (distinct: each its own expiration) over one Space→Agent proof, as nb.delegation strings. */
async function chain(n: number): Promise<{ s2a: API.Delegation; strings: string[] }> {
  const [space, agent, service] = [await generateKey(), await generateKey(), await generateKey()]
  const s2a = await delegateSpaceToAgent({ space, agent })
  const now = Math.floor(Date.now() / 1000)
  const strings = []
  for (let i = 0; i < n; i++) strings.push(await formatDelegationBase64(await delegateAgentToService({ agent, service: service.did() as API.DID, proofs: [s2a], expiration: now + 3600 + i })))
  return { s2a, strings }
}

async function parsed(s: string): Promise<API.Delegation> {
  const r = await parseDelegation(s)
  if (r.error) throw r.error
  return r.ok
}

const proofOf = (d: API.Delegation) => d.proofs[0] as API.Delegation

describe('proof blocks', () => {
  it('the same Space→Agent proof in two delegations is decoded once: the second gets the first decoding', async () => {
    setProofBlockCacheBytes(DEFAULT_PROOF_BLOCK_CACHE_BYTES) // empty
    const { s2a, strings } = await chain(2)
    const [a, b] = [await parsed(strings[0] as string), await parsed(strings[1] as string)]
    expect(a.cid.toString()).not.toBe(b.cid.toString())
    // Only the proof is kept, not the archives' other blocks (their root variants, new in each).
    expect(proofBlockCacheBytes()).toBe(VIEW_FACTOR * s2a.root.bytes.byteLength + ENTRY_OVERHEAD_BYTES)
    expect(proofOf(b).cid.toString()).toBe(s2a.cid.toString())
    expect(proofOf(b).data).toBe(proofOf(a).data)
    expect(proofBlockCacheBytes()).toBeGreaterThan(0)
    // The kept block owns its bytes and CID: it does not hold the whole archive (or a pool slab) alive.
    for (const d of [a, b]) {
      expect(proofOf(d).root.bytes.byteLength).toBe(proofOf(d).root.bytes.buffer.byteLength)
      expect(proofOf(d).cid.bytes.byteLength).toBe(proofOf(d).cid.bytes.buffer.byteLength)
    }
  })

  it('with the cache off (0 bytes) every delegation decodes its own proof', async () => {
    setProofBlockCacheBytes(0)
    const { strings } = await chain(2)
    const [a, b] = [await parsed(strings[0] as string), await parsed(strings[1] as string)]
    expect(proofOf(b).data).not.toBe(proofOf(a).data)
    expect(proofOf(b).data.signature).toEqual(proofOf(a).data.signature)
    expect(proofBlockCacheBytes()).toBe(0)
  })

  it('a proof block with other bytes under the same CID gets its own decoding, not the cached one', async () => {
    const { s2a, strings } = await chain(2)
    const honest = await parsed(strings[0] as string)
    // The second delegation's archive with a byte of its proof's signature flipped, still filed under the honest CID.
    const forgedBytes = new Uint8Array(s2a.root.bytes)
    const at = Buffer.from(forgedBytes).indexOf(Buffer.from(s2a.signature)) + 20
    expect(at).toBeGreaterThan(20)
    forgedBytes[at] = (forgedBytes[at] as number) ^ 0xff
    const reader = CarBufferReader.fromBytes(decodeBase64(strings[1] as string))
    const blocks = [...reader.blocks()].map((b) => (b.cid.toString() === s2a.cid.toString() ? { cid: b.cid, bytes: forgedBytes } : b))
    const size = blocks.reduce((n, b) => n + CarBufferWriter.blockLength(b), CarBufferWriter.headerLength({ roots: reader.getRoots() }))
    const writer = CarBufferWriter.createWriter(new ArrayBuffer(size), { roots: reader.getRoots() })
    for (const b of blocks) writer.write(b)
    const forged = await parsed(encodeBase64(writer.close()))
    expect(proofOf(forged).cid.toString()).toBe(s2a.cid.toString())
    expect(proofOf(forged).data).not.toBe(proofOf(honest).data)
    expect(proofOf(forged).root.bytes).toEqual(forgedBytes)
    // ...and the honest proof after it is not given the forged decoding either.
    const again = await parsed(strings[0] as string)
    expect(proofOf(again).root.bytes).toEqual(s2a.root.bytes)
    expect(proofOf(again).data.signature).toEqual(proofOf(honest).data.signature)
  })

  it('holds at most its bound, however many distinct proofs pass', async () => {
    setProofBlockCacheBytes(16 * 1024)
    for (let i = 0; i < 12; i++) {
      const { strings } = await chain(1)
      await parsed(strings[0] as string)
      expect(proofBlockCacheBytes()).toBeLessThanOrEqual(16 * 1024)
    }
    expect(proofBlockCacheBytes()).toBeGreaterThan(8 * 1024)
    expect(() => setProofBlockCacheBytes(-1)).toThrow(RangeError)
  })
})
