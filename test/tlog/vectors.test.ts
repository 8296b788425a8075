/**
 * test/vectors/go-tlog.json is the output of `tlogtool vectors 513` (golang.org/x/mod/sumdb/tlog
 * v0.7.0; see test/vectors/PROVENANCE.md). Our code must reproduce it byte for byte; the interop
 * test checks the file is still what Go prints.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { decodeHash } from '../../src/tlog/encoding.js'
import { leafHash } from '../../src/tlog/hash.js'
import { checkRecord, checkTree } from '../../src/tlog/proof.js'
import { entry } from './fixtures.js'
import { GO_VECTORS_PATH, type GoVectors, reproduceGoVectors } from './go-vectors.js'

describe('Go x/mod known-answer vectors (test/vectors/go-tlog.json)', () => {
  const text = readFileSync(GO_VECTORS_PATH, 'utf8')
  const v = JSON.parse(text) as GoVectors

  it('covers what PROVENANCE.md says', () => {
    expect(v.entries).toBe('leaf %d')
    expect(v.size).toBe(513)
    expect(v.roots).toHaveLength(513)
    // All pairs up to size 32…
    for (let size = 1; size <= 32; size++) {
      expect(v.inclusion.filter((x) => x.size === size)).toHaveLength(size)
      expect(v.consistency.filter((x) => x.new === size)).toHaveLength(size)
    }
    // …and samples of larger sizes around 2^k and tile boundaries.
    for (const size of [33, 64, 65, 255, 256, 257, 300, 511, 512, 513]) {
      expect(v.inclusion.some((x) => x.size === size && x.index === size - 1)).toBe(true)
      expect(v.consistency.some((x) => x.new === size && x.old === 1)).toBe(true)
    }
    expect(v.roots[255]).toBe('z17/2xHQknou31Ow5zx4N/ZZQU4AU32l2Q61xMSf8nQ=') // Go vectors, test/vectors/PROVENANCE.md
    expect(v.roots[299]).toBe('56/ILTiUT8eTBUUygJHUWCMojB9zTL2sBjlnE+vUtdU=')
  })

  it('our roots and proofs reproduce the file byte for byte', async () => {
    const ours = await reproduceGoVectors(v)
    expect(ours.length).toBe(text.length)
    expect(ours === text).toBe(true)
  })

  it("Go's proofs check with our checkers", () => {
    const roots = v.roots.map(decodeHash)
    for (const x of v.inclusion) checkRecord(x.proof.map(decodeHash), x.size, roots[x.size - 1]!, x.index, leafHash(entry(x.index)))
    for (const x of v.consistency) checkTree(x.proof.map(decodeHash), x.new, roots[x.new - 1]!, x.old, roots[x.old - 1]!)
  })
})
