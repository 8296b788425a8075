/** Reading and reproducing test/vectors/go-tlog.json (see test/vectors/PROVENANCE.md). */
import { encodeBase64 } from '../../src/tlog/encoding.js'
import { treeHash } from '../../src/tlog/hash.js'
import { proveRecord, proveTree } from '../../src/tlog/proof.js'
import { storeOf } from './fixtures.js'

/** The shape `tlogtool vectors N` prints (hashes in standard base64). */
export interface GoVectors {
  description: string
  entries: string
  size: number
  roots: string[]
  inclusion: { size: number; index: number; proof: string[] }[]
  consistency: { new: number; old: number; proof: string[] }[]
}

export const GO_VECTORS_PATH = new URL('../vectors/go-tlog.json', import.meta.url)

/** Recomputes a Go vector file's contents with our code, for the pairs it lists. */
export async function reproduceGoVectors(v: GoVectors): Promise<string> {
  const store = storeOf(v.size)
  const ours: GoVectors = {
    description: v.description,
    entries: v.entries,
    size: v.size,
    roots: [],
    inclusion: [],
    consistency: [],
  }
  for (let size = 1; size <= v.size; size++) ours.roots.push(encodeBase64(await treeHash(size, store)))
  for (const { size, index } of v.inclusion) {
    ours.inclusion.push({ size, index, proof: (await proveRecord(size, index, store)).map(encodeBase64) })
  }
  for (const c of v.consistency) {
    ours.consistency.push({ new: c.new, old: c.old, proof: (await proveTree(c.new, c.old, store)).map(encodeBase64) })
  }
  return JSON.stringify(ours, null, 2) + '\n'
}
