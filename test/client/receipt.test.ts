/**
 * checkAppendResult (src/client/receipt.ts), what `ucanlog append` checks of each published receipt: every
 * field it relies on matters. A receipt from the real engine passes; changing the index, the tree
 * size, the root, any proof hash, the entry, or pairing a valid proof with a checkpoint of another
 * tree, is refused.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { InvalidReceiptError, checkAppendResult } from '../../src/client/receipt.js'
import { type WitnessQuorum, Log } from '../../src/log/log.js'
import { InvalidProofError, decodeBase64, ed25519Signer, encodeBase64 } from '../../src/tlog/index.js'
import { type AppendResult, appendResultOf } from '../../src/ucan/wire.js'
import { MemoryFiles } from '../helpers/memory-files.js'

const ORIGIN = 'ucanlog.test/logs/append-result'
const signer = ed25519Signer(ORIGIN, new Uint8Array(32).fill(3))
const quorumMet: WitnessQuorum = { cosign: async (checkpoint) => ({ note: checkpoint, cosigned: new Set(), satisfied: true }) }
const entry = (i: number, tag = '') => new TextEncoder().encode(`entry ${i}${tag}`)

/** Receipts of `entries` appended one batch at a time to a fresh log (so each is at its own tree size). */
async function receipts(entries: Uint8Array[]): Promise<AppendResult[]> {
  const log = await Log.open({ id: 'did:key:test', origin: ORIGIN, signer, files: new MemoryFiles(), witnesses: quorumMet, batchMaxAgeMs: 1 })
  const out: AppendResult[] = []
  for (const e of entries) out.push(appendResultOf(await log.append(e)))
  await log.close()
  return out
}

let a: AppendResult[] // entries 0..6 appended one at a time: receipt i is at tree size i + 1
beforeAll(async () => {
  a = await receipts(Array.from({ length: 7 }, (_, i) => entry(i)))
})
const ENTRY = entry(3)

/** Receipt of entry 3 in a tree of the `size` entries `entry(i, tag(i))`, appended in one batch (3-hash proof). */
async function good(tag: (i: number) => string = () => '', size = 7): Promise<AppendResult> {
  const log = await Log.open({ id: 'did:key:test', origin: ORIGIN, signer, files: new MemoryFiles(), witnesses: quorumMet, batchMaxAgeMs: 1, batchMaxSize: size })
  const rs = await Promise.all(Array.from({ length: size }, (_, i) => log.append(entry(i, tag(i)))))
  await log.close()
  return appendResultOf(rs[3]!)
}

const refused = (r: AppendResult, e = ENTRY) => {
  let err: unknown
  try {
    checkAppendResult(r, e)
  } catch (x) {
    err = x
  }
  return err
}

describe('checkAppendResult', () => {
  it('accepts the engine\'s receipts', async () => {
    const r = await good()
    expect(r).toMatchObject({ index: 3, treeSize: 7, published: true })
    expect(r.inclusionProof).toHaveLength(3)
    expect(() => checkAppendResult(r, ENTRY)).not.toThrow()
    a.forEach((r, i) => expect(() => checkAppendResult(r, entry(i))).not.toThrow())
  })

  it('the entry matters: another entry is refused (leaf hash)', async () => {
    expect(refused(await good(), entry(4))).toBeInstanceOf(InvalidProofError)
    expect(refused(await good(), entry(3, ' '))).toBeInstanceOf(InvalidProofError)
  })

  it('the index matters: a neighbour\'s index is refused', async () => {
    const r = await good()
    expect(refused({ ...r, index: 2 })).toBeInstanceOf(InvalidProofError)
    expect(refused({ ...r, index: 4 })).toBeInstanceOf(InvalidProofError)
    expect(refused({ ...r, index: 7 })).toBeDefined() // outside the tree
  })

  it('every proof hash matters: each flipped, dropped, or one added, is refused', async () => {
    const r = await good()
    for (let k = 0; k < r.inclusionProof.length; k++) {
      const proof = [...r.inclusionProof]
      const h = decodeBase64(proof[k]!)
      h[31]! ^= 1
      proof[k] = encodeBase64(h)
      expect(refused({ ...r, inclusionProof: proof }), `hash ${k}`).toBeInstanceOf(InvalidProofError)
      expect(refused({ ...r, inclusionProof: r.inclusionProof.filter((_, j) => j !== k) }), `without hash ${k}`).toBeInstanceOf(InvalidProofError)
    }
    expect(refused({ ...r, inclusionProof: [...r.inclusionProof, r.inclusionProof[0]!] })).toBeInstanceOf(InvalidProofError)
    expect(refused({ ...r, inclusionProof: [] })).toBeInstanceOf(InvalidProofError)
  })

  it('the tree size and root must be the signed checkpoint\'s: a proof valid for another tree, with this checkpoint, is refused', async () => {
    const r = await good()
    // Entry 3 of another log of 7 entries (entry 5 differs): its proof, root and size verify together,
    // but they are not the tree this checkpoint signs.
    const other = await good((i) => (i === 5 ? ' (other)' : ''))
    expect(() => checkAppendResult(other, ENTRY)).not.toThrow()
    expect(other.rootHash).not.toBe(r.rootHash)
    expect(refused({ ...other, checkpoint: r.checkpoint })).toBeInstanceOf(InvalidReceiptError)
    // The same log's tree of size 6 (proof, root, size) with the checkpoint of size 7.
    const smaller = await good(undefined, 6)
    expect(smaller.treeSize).toBe(6)
    expect(() => checkAppendResult(smaller, ENTRY)).not.toThrow()
    const mixed = refused({ ...smaller, checkpoint: r.checkpoint })
    expect(mixed).toBeInstanceOf(InvalidReceiptError)
    expect((mixed as Error).name).toBe('InvalidReceipt')
    expect((mixed as Error).message).toBe('the receipt says tree size 6, its checkpoint 7')
    // The root or the size alone changed: refused.
    expect(refused({ ...r, rootHash: other.rootHash })).toBeDefined()
    expect(refused({ ...r, treeSize: 8 })).toBeDefined()
    expect(refused({ ...r, treeSize: 6 })).toBeDefined()
  })

  it('the origin must be the checkpoint\'s, and an unpublished receipt has nothing to check', async () => {
    const r = await good()
    expect(refused({ ...r, origin: 'ucanlog.test/logs/other' })).toMatchObject({ name: 'InvalidReceipt', message: `the receipt says origin ucanlog.test/logs/other, its checkpoint ${ORIGIN}` })
    const root = (refused({ ...r, rootHash: encodeBase64(new Uint8Array(32)) }) as Error).message
    expect(root).toBe(`the receipt says root ${encodeBase64(new Uint8Array(32))}, its checkpoint ${r.rootHash}`)
    expect(refused({ ...r, checkpoint: 'not a note' })).toMatchObject({ name: 'InvalidReceipt', message: expect.stringMatching(/^the receipt's checkpoint does not parse: /) })
    expect(refused({ ...r, published: false })).toMatchObject({ message: 'the entry is not published yet: there is no checkpoint to check against' })
    expect(refused({ ...r, published: false, checkpoint: '', inclusionProof: [] })).toBeInstanceOf(InvalidReceiptError)
    expect(refused({ ...r, published: false })).toBeInstanceOf(InvalidReceiptError) // says unpublished: not reported as verified
  })
})
