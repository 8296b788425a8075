import { describe, expect, it } from 'vitest'
import { decodeHash } from '../../src/tlog/encoding.js'
import { type Hash, MemoryHashStore, leafHash, treeHash } from '../../src/tlog/hash.js'
import { InvalidProofError, checkRecord, checkTree, proveRecord, proveRecords, proveTree } from '../../src/tlog/proof.js'
import { ReferenceTree, refLeafHash } from './rfc6962.js'
import { b64, checkingReader, entry, flip, hex, storeOf } from './fixtures.js'

const MAX = 300

// The fast argument and shape checks come first: Stryker stops at the first failing test, so a
// mutant they kill never waits for the exhaustive checks below.
describe('argument validation', () => {
  const store = storeOf(8)
  const h = leafHash(entry(0))

  it('prove functions reject impossible sizes and indexes with RangeError', async () => {
    await expect(proveRecord(0, 0, store)).rejects.toThrow(RangeError)
    await expect(proveRecord(4, 4, store)).rejects.toThrow(RangeError)
    await expect(proveRecord(4, -1, store)).rejects.toThrow(RangeError)
    await expect(proveRecord(4.5, 1, store)).rejects.toThrow(RangeError)
    await expect(proveTree(4, 0, store)).rejects.toThrow(RangeError) // the empty tree has no proof
    await expect(proveTree(4, 5, store)).rejects.toThrow(RangeError) // bigger tree first
    await expect(proveTree(2 ** 53, 1, store)).rejects.toThrow(RangeError)
    expect(await proveTree(4, 4, store)).toEqual([])
    expect(await proveRecord(1, 0, store)).toEqual([])
  })

  it('check functions reject impossible arguments with RangeError and bad proof shapes with InvalidProofError', () => {
    expect(() => checkRecord([], 0, h, 0, h)).toThrow(RangeError)
    expect(() => checkRecord([], 1, h, 1, h)).toThrow(RangeError)
    expect(() => checkRecord([], 1, h.subarray(1), 0, h)).toThrow(RangeError)
    expect(() => checkRecord([], 1, h, 0, new Uint8Array(33))).toThrow(RangeError)
    expect(() => checkTree([], 3, h, 4, h)).toThrow(RangeError)
    expect(() => checkTree([], 3, h, 0, h)).toThrow(RangeError)
    expect(() => checkTree([], NaN, h, 1, h)).toThrow(RangeError)
    checkRecord([], 1, h, 0, h)
    checkTree([], 7, h, 7, h)
    expect(() => checkTree([], 7, h, 7, flip(h))).toThrow(InvalidProofError)
    expect(() => checkTree([h], 7, h, 7, h)).toThrow(InvalidProofError)
    expect(() => checkRecord([new Uint8Array(31)], 2, h, 0, h)).toThrow(InvalidProofError)
    expect(() => checkRecord(Array(200).fill(h) as Hash[], 2, h, 0, h)).toThrow(InvalidProofError)
    expect(() => checkTree('proof' as unknown as Hash[], 2, h, 1, h)).toThrow(InvalidProofError)
  })

  it('InvalidProofError has a stable name', () => {
    expect(new InvalidProofError('x').name).toBe('InvalidProofError')
    expect(new InvalidProofError('x')).toBeInstanceOf(Error)
  })
})

describe('named errors and exact bounds (mutation testing, issue 9)', () => {
  const store = storeOf(8)
  const h = leafHash(entry(0))
  const notBytes = Array(32).fill(0) as unknown as Hash // 32 elements, not a Uint8Array

  it('RangeErrors name the argument and the rule', async () => {
    await expect(proveRecord(0, 0, store)).rejects.toThrow(new RangeError('size must be a safe integer ≥ 1, got 0'))
    await expect(proveRecord(4, -1, store)).rejects.toThrow(new RangeError('index must be a safe integer ≥ 0, got -1'))
    await expect(proveRecord(4, 4, store)).rejects.toThrow(new RangeError('index 4 not in tree of size 4'))
    await expect(proveTree(4, 0, store)).rejects.toThrow(new RangeError('oldSize must be a safe integer ≥ 1, got 0'))
    await expect(proveTree(0, 1, store)).rejects.toThrow(new RangeError('newSize must be a safe integer ≥ 1, got 0'))
    await expect(proveTree(4, 5, store)).rejects.toThrow(new RangeError('oldSize 5 > newSize 4'))
    expect(() => checkRecord([], 4, h, 4, h)).toThrow(new RangeError('index 4 not in tree of size 4'))
    expect(() => checkRecord([], 0, h, 0, h)).toThrow(new RangeError('size must be a safe integer ≥ 1, got 0'))
    expect(() => checkRecord([], 4, h, -1, h)).toThrow(new RangeError('index must be a safe integer ≥ 0, got -1'))
    expect(() => checkTree([], 4, h, 0, h)).toThrow(new RangeError('oldSize must be a safe integer ≥ 1, got 0'))
    expect(() => checkTree([], 4, h, 5, h)).toThrow(new RangeError('oldSize 5 > newSize 4'))
    expect(() => checkTree([], 2 ** 53, h, 1, h)).toThrow(new RangeError(`newSize must be a safe integer ≥ 1, got ${2 ** 53}`))
  })

  it('every root and leaf argument must be a 32-byte Uint8Array (RangeError, not a failed proof)', () => {
    for (const bad of [h.subarray(1), new Uint8Array(33), notBytes]) {
      expect(() => checkRecord([], 1, bad, 0, h)).toThrow(new RangeError('root must be a 32-byte hash'))
      expect(() => checkRecord([], 1, h, 0, bad)).toThrow(new RangeError('leaf must be a 32-byte hash'))
      expect(() => checkTree([], 1, bad, 1, h)).toThrow(new RangeError('newRoot must be a 32-byte hash'))
      expect(() => checkTree([], 1, h, 1, bad)).toThrow(new RangeError('oldRoot must be a 32-byte hash'))
    }
  })

  it('proofs: an array of at most 128 32-byte Uint8Arrays, then exactly the right length', () => {
    expect(() => checkTree('proof' as unknown as Hash[], 2, h, 1, h)).toThrow(new InvalidProofError('proof must be an array of hashes'))
    expect(() => checkRecord([notBytes], 2, h, 0, h)).toThrow(new InvalidProofError('proof hash must be 32 bytes'))
    expect(() => checkRecord([new Uint8Array(33)], 2, h, 0, h)).toThrow(new InvalidProofError('proof hash must be 32 bytes'))
    // 128 hashes pass the shape check and fail on length; 129 fail the shape check.
    expect(() => checkRecord(Array(128).fill(h) as Hash[], 2, h, 0, h)).toThrow(new InvalidProofError('inclusion proof has too many hashes'))
    expect(() => checkRecord(Array(129).fill(h) as Hash[], 2, h, 0, h)).toThrow(new InvalidProofError('proof has 129 hashes'))
    expect(() => checkRecord([], 2, h, 0, h)).toThrow(new InvalidProofError('inclusion proof has too few hashes'))
    expect(() => checkRecord([h], 2, h, 0, h)).toThrow(new InvalidProofError('inclusion proof does not match the root hash'))
  })

  it('consistency proofs: too many or too few hashes at each kind of step, or wrong roots, by name', async () => {
    const roots = new Map<number, Hash>()
    for (const n of [1, 2, 3, 4]) roots.set(n, await treeHash(n, store))
    const root = (n: number) => roots.get(n)!
    // old = new: no hashes at all.
    expect(() => checkTree([h], 7, h, 7, h)).toThrow(new InvalidProofError('consistency proof has too many hashes'))
    // 2 from 1: one hash (the right sibling), none given.
    expect(() => checkTree([], 2, root(2), 1, root(1))).toThrow(new InvalidProofError('consistency proof has too few hashes'))
    // 4 from 3: the proof ends at the old tree's last subtree D[2:3], which needs its own hash.
    const p43 = await proveTree(4, 3, store)
    expect(p43).toHaveLength(3)
    checkTree(p43, 4, root(4), 3, root(3))
    expect(() => checkTree(p43.slice(1), 4, root(4), 3, root(3))).toThrow(new InvalidProofError('consistency proof has too few hashes'))
    expect(() => checkTree([h, ...p43], 4, root(4), 3, root(3))).toThrow(new InvalidProofError('consistency proof has too many hashes'))
    expect(() => checkTree(p43, 4, root(4), 3, h)).toThrow(new InvalidProofError('consistency proof does not match the root hashes'))
  })

  it('hash readers that return the wrong number or kind of hashes are errors, not proofs', async () => {
    const reader = (f: (ix: readonly number[]) => unknown) => ({ readHashes: async (ix: readonly number[]) => f(ix) as Hash[] })
    await expect(proveRecord(8, 3, reader((ix) => ix.slice(1).map(() => h)))).rejects.toThrow('tlog: readHashes(3 indexes) returned 2 hashes')
    await expect(proveTree(8, 3, reader(() => 'hashes'))).rejects.toThrow('tlog: readHashes(4 indexes) returned string hashes')
    await expect(proveRecord(8, 3, reader((ix) => ix.map(() => notBytes)))).rejects.toThrow('tlog: readHashes returned a hash that is not 32 bytes')
    await expect(proveRecord(8, 3, reader((ix) => ix.map(() => h.subarray(1))))).rejects.toThrow('tlog: readHashes returned a hash that is not 32 bytes')
  })
})


describe('exhaustive: every proof of every tree size 1..300 against the naive RFC 6962 definitions', () => {
  const store = storeOf(MAX)
  const ref = new ReferenceTree(Array.from({ length: MAX }, (_, i) => refLeafHash(entry(i))))
  const roots: Hash[] = [new Uint8Array(32)]
  for (let size = 1; size <= MAX; size++) roots.push(ref.mth(0, size))
  const leaves = ref.leaves
  const join = (p: readonly Hash[]): string => p.map(hex).join(',')

  // Plain checks (expect() per proof would dominate the runtime) that stop at the first failure, so
  // a broken build fails in milliseconds rather than after every proof of every size.
  function harness(): { rejected: number; fail(msg: string): never; mustFail(what: string, f: () => void): void } {
    const h = {
      rejected: 0,
      fail(msg: string): never {
        throw new Error(msg)
      },
      mustFail(what: string, f: () => void): void {
        try {
          f()
        } catch (e) {
          if (!(e instanceof InvalidProofError)) h.fail(`${what}: threw ${String(e)}`)
          h.rejected++
          return
        }
        h.fail(`accepted: ${what}`)
      },
    }
    return h
  }

  it('roots', async () => {
    for (let size = 1; size <= MAX; size++) expect(hex(await treeHash(size, store))).toBe(hex(roots[size]!))
  })

  it('inclusion proofs equal PATH(m, D[n]), verify, and reject tampering', async () => {
    const t = harness()
    let checked = 0
    let calls = 0
    const counting = { readHashes: (ix: readonly number[]) => (calls++, store.readHashes(ix)) }
    for (let size = 1; size <= MAX; size++) {
      const root = roots[size]!
      for (let index = 0; index < size; index++) {
        const at = `size ${size} index ${index}`
        const before = calls
        const proof = await proveRecord(size, index, counting)
        if (calls - before !== (size === 1 ? 0 : 1)) t.fail(`${at}: ${calls - before} readHashes calls`)
        if (join(proof) !== join(ref.path(index, 0, size))) t.fail(`${at}: proof differs from PATH`)
        checkRecord(proof, size, root, index, leaves[index]!)
        checked++
        // Tampering. Trees up to 64: every hash and every mutation. Larger: one (rotating) hash and
        // one mutation, rotating through the kinds, to keep the runtime down.
        const all = size <= 64
        const positions = all ? proof.map((_, i) => i) : proof.length ? [index % proof.length] : []
        for (const p of positions) {
          const bad = proof.slice()
          bad[p] = flip(bad[p]!, (index + p) % 32, p % 8)
          t.mustFail(`${at} hash ${p} flipped`, () => checkRecord(bad, size, root, index, leaves[index]!))
        }
        const kind = index % 7
        if (size > 1 && (all || kind === 0)) t.mustFail(`${at} wrong index`, () => checkRecord(proof, size, root, (index + 1) % size, leaves[index]!))
        if (all || kind === 1) t.mustFail(`${at} wrong leaf`, () => checkRecord(proof, size, root, index, leaves[(index + 1) % MAX]!))
        if (all || kind === 2) t.mustFail(`${at} wrong root`, () => checkRecord(proof, size, flip(root, 31, 7), index, leaves[index]!))
        if (size < MAX && (all || kind === 3)) t.mustFail(`${at} size+1`, () => checkRecord(proof, size + 1, roots[size + 1]!, index, leaves[index]!))
        if (index < size - 1 && (all || kind === 4)) t.mustFail(`${at} size-1`, () => checkRecord(proof, size - 1, roots[size - 1]!, index, leaves[index]!))
        if (all || kind === 5) t.mustFail(`${at} extra hash`, () => checkRecord([...proof, proof[0] ?? root], size, root, index, leaves[index]!))
        if (proof.length > 0 && (all || kind === 6)) t.mustFail(`${at} missing hash`, () => checkRecord(proof.slice(1), size, root, index, leaves[index]!))
      }
    }
    expect(checked).toBe((MAX * (MAX + 1)) / 2)
    expect(t.rejected).toBeGreaterThan(checked)
  })

  it('consistency proofs equal PROOF(m, D[n]), verify, and reject tampering', async () => {
    const t = harness()
    let checked = 0
    let calls = 0
    const counting = { readHashes: (ix: readonly number[]) => (calls++, store.readHashes(ix)) }
    for (let size = 1; size <= MAX; size++) {
      const root = roots[size]!
      for (let old = 1; old <= size; old++) {
        const at = `size ${size} old ${old}`
        const before = calls
        const proof = await proveTree(size, old, counting)
        if (calls - before > 1) t.fail(`${at}: ${calls - before} readHashes calls`)
        if (join(proof) !== join(ref.proof(old, size))) t.fail(`${at}: proof differs from PROOF`)
        checkTree(proof, size, root, old, roots[old]!)
        checked++
        const all = size <= 64
        const positions = all ? proof.map((_, i) => i) : proof.length ? [old % proof.length] : []
        for (const p of positions) {
          const bad = proof.slice()
          bad[p] = flip(bad[p]!, (old + p) % 32, p % 8)
          t.mustFail(`${at} hash ${p} flipped`, () => checkTree(bad, size, root, old, roots[old]!))
        }
        const kind = old % 8
        if (all || kind === 0) t.mustFail(`${at} wrong new root`, () => checkTree(proof, size, flip(root), old, roots[old]!))
        if (all || kind === 1) t.mustFail(`${at} wrong old root`, () => checkTree(proof, size, root, old, flip(roots[old]!, 5)))
        if (old > 1 && (all || kind === 2)) t.mustFail(`${at} old-1`, () => checkTree(proof, size, root, old - 1, roots[old - 1]!))
        if (old < size && (all || kind === 3)) t.mustFail(`${at} old+1`, () => checkTree(proof, size, root, old + 1, roots[old + 1]!))
        if (size < MAX && (all || kind === 4)) t.mustFail(`${at} size+1`, () => checkTree(proof, size + 1, roots[size + 1]!, old, roots[old]!))
        if (old < size - 1 && (all || kind === 5)) t.mustFail(`${at} size-1`, () => checkTree(proof, size - 1, roots[size - 1]!, old, roots[old]!))
        if (all || kind === 6) t.mustFail(`${at} extra hash`, () => checkTree([...proof, root], size, root, old, roots[old]!))
        if (proof.length > 0 && (all || kind === 7)) t.mustFail(`${at} missing hash`, () => checkTree(proof.slice(0, -1), size, root, old, roots[old]!))
      }
    }
    expect(checked).toBe((MAX * (MAX + 1)) / 2)
    expect(t.rejected).toBeGreaterThan(checked)
  })

  it('proveRecords gives every proof of a run of leaves exactly as proveRecord does, from one increasing read', async () => {
    let runs = 0
    for (let size = 1; size <= MAX; size++) {
      // Runs that start at 0, at the last batch-sized step, end at the right edge, or hold one leaf.
      const windows = new Set([`0:${size}`, `${size - 1}:1`, `${Math.floor(size / 2)}:${Math.ceil(size / 2)}`, `${Math.max(0, size - 17)}:${Math.min(size, 17)}`, `${Math.floor(size / 3)}:0`])
      for (const w of windows) {
        const [first, count] = w.split(':').map(Number) as [number, number]
        const reader = checkingReader(store)
        const proofs = await proveRecords(size, first, count, reader)
        if (proofs.length !== count) throw new Error(`size ${size} ${w}: ${proofs.length} proofs`)
        if (reader.calls !== (count > 0 && size > 1 ? 1 : 0)) throw new Error(`size ${size} ${w}: ${reader.calls} reads`)
        for (let k = 0; k < count; k++) {
          const one = join(await proveRecord(size, first + k, store))
          if (join(proofs[k]!) !== one) throw new Error(`size ${size} leaf ${first + k}: differs from proveRecord`)
          checkRecord(proofs[k]!, size, roots[size]!, first + k, leaves[first + k]!)
        }
        runs++
      }
    }
    expect(runs).toBeGreaterThan(MAX * 3)
    await expect(proveRecords(8, 4, 5, store)).rejects.toThrow(new RangeError('leaves 4..8 not all in tree of size 8'))
    await expect(proveRecords(8, -1, 1, store)).rejects.toThrow(RangeError)
    await expect(proveRecords(8, 0, -1, store)).rejects.toThrow(RangeError)
  })

  it('proofs read hashes in strictly increasing index order (batchable)', async () => {
    for (const size of [1, 2, 3, 7, 8, 9, 100, 255, 256, 257, 300]) {
      for (const index of [0, 1, Math.floor(size / 2), size - 1]) {
        if (index >= size) continue
        await proveRecord(size, index, checkingReader(store))
        await proveTree(size, index + 1, checkingReader(store))
      }
    }
  })
})

describe('litewitness interop vectors (torchwood cmd/litewitness/testdata/litewitness.txt)', () => {
  // Leaves are given directly as leaf hashes L_i = 0x2a || i || 0x00*30.
  const store = new MemoryHashStore()
  const leaf = (i: number): Hash => {
    const h = new Uint8Array(32)
    h[0] = 0x2a
    h[1] = i
    return h
  }
  for (let i = 0; i < 5; i++) store.append(leaf(i))
  const root = { 1: 'KgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 3: 'RcCI1Nk56ZcSmIEfIn0SleqtV7uvrlXNccFx595Iwl0=', 5: 'QrtXrQZCCvpIgsSmOsah7HdICzMLLyDfxToMql9WTjY=' }
  const consistency: [number, number, string[]][] = [
    [3, 1, ['KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'KgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=']],
    [5, 1, ['KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', '+fUDV+k970B4I3uKrqJM4aP1lloPZP8mvr2Z4wRw2LI=', 'KgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=']],
    [5, 3, ['KgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'KgMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'wgiIFdZfYNv6WU1OllBKsWnLYIS/DBMqt8Uh/S4OukE=', 'KgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=']],
  ]

  it('roots of sizes 1, 3, 5', async () => {
    for (const [size, want] of Object.entries(root)) expect(b64(await treeHash(Number(size), store))).toBe(want)
  })

  it.each(consistency)('consistency %i → from %i', async (size, old, want) => {
    const proof = await proveTree(size, old, store)
    expect(proof.map(b64)).toEqual(want)
    checkTree(want.map(decodeHash), size, decodeHash(root[size as 3 | 5]), old, decodeHash(root[old as 1 | 3]))
  })

  it('inclusion of leaf 2 in size 5', async () => {
    const want = ['KgMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'wgiIFdZfYNv6WU1OllBKsWnLYIS/DBMqt8Uh/S4OukE=', 'KgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=']
    expect((await proveRecord(5, 2, store)).map(b64)).toEqual(want)
    checkRecord(want.map(decodeHash), 5, decodeHash(root[5]), 2, leaf(2))
  })
})
