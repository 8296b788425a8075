import { describe, expect, it } from 'vitest'
import {
  EMPTY_ROOT,
  HASH_SIZE,
  MemoryHashStore,
  leafHash,
  nodeHash,
  splitStoredHashIndex,
  storedHashCount,
  storedHashIndex,
  storedHashes,
  treeHash,
} from '../../src/tlog/hash.js'
import { ReferenceTree, refLeafHash } from './rfc6962.js'
import { checkingReader, entry, fromHex, hex, storeOf } from './fixtures.js'

describe('RFC 6962 §2.1 hashing (known answers, test/vectors/PROVENANCE.md)', () => {
  it('EMPTY_ROOT is SHA-256 of the empty string', () => {
    expect(EMPTY_ROOT).toHaveLength(HASH_SIZE)
    expect(hex(EMPTY_ROOT)).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  })

  it('leafHash and nodeHash use the 0x00 / 0x01 domain prefixes', () => {
    expect(hex(leafHash(new Uint8Array()))).toBe('6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d')
    expect(hex(leafHash(entry(0)))).toBe('1bb97dcc21635d47e2663efdfd0a174686d98dd701352dd2cd06e8b43fd3d305')
    const l = leafHash(fromHex(''))
    const r = leafHash(fromHex('00'))
    expect(hex(nodeHash(l, r))).toBe('fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125')
    expect(hex(nodeHash(r, l))).not.toBe(hex(nodeHash(l, r)))
  })

  it('nodeHash rejects hashes that are not 32 bytes', () => {
    expect(() => nodeHash(new Uint8Array(31), new Uint8Array(32))).toThrow(RangeError)
    expect(() => nodeHash(new Uint8Array(32), new Uint8Array(33))).toThrow(RangeError)
  })

  // The classic CT / RFC 6962 test tree (certificate-transparency merkle_tree_test.cc).
  const ctLeaves = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f']
  const ctRoots = [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
    '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
    'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
    '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
  ]
  it('treeHash reproduces the RFC 6962 / CT test-tree roots for sizes 0..8', async () => {
    const store = new MemoryHashStore()
    expect(hex(await treeHash(0, store))).toBe(hex(EMPTY_ROOT))
    for (const [i, leaf] of ctLeaves.entries()) {
      store.append(leafHash(fromHex(leaf)))
      expect(hex(await treeHash(i + 1, store))).toBe(ctRoots[i])
    }
  })

  it('treeHash reproduces the "leaf 0".."leaf 299" roots (Go vectors, test/vectors/PROVENANCE.md)', async () => {
    const store = storeOf(300)
    expect(hex(await treeHash(256, store))).toBe('cf5effdb11d0927a2edf53b0e73c7837f659414e00537da5d90eb5c4c49ff274')
    expect(hex(await treeHash(300, store))).toBe('e7afc82d38944fc7930545328091d45823288c1f734cbdac06396713ebd4b5d5')
  })
})

describe('stored hash indexing (x/mod StoredHashIndex order)', () => {
  it('numbers hashes in append order: leaf n, then the subtrees it completes', () => {
    // leaf0 leaf1 (1,0) leaf2 leaf3 (1,1) (2,0) leaf4 leaf5 (1,2) leaf6 leaf7 (1,3) (2,1) (3,0)
    const order: [number, number][] = [[0, 0], [0, 1], [1, 0], [0, 2], [0, 3], [1, 1], [2, 0], [0, 4], [0, 5], [1, 2], [0, 6], [0, 7], [1, 3], [2, 1], [3, 0]]
    order.forEach(([level, n], i) => {
      expect(storedHashIndex(level, n)).toBe(i)
      expect(splitStoredHashIndex(i)).toEqual({ level, n })
    })
  })

  it('splitStoredHashIndex inverts storedHashIndex, including near 2^50', () => {
    for (let level = 0; level < 10; level++) {
      for (let n = 0; n < 100; n++) expect(splitStoredHashIndex(storedHashIndex(level, n))).toEqual({ level, n })
    }
    for (const [level, n] of [[0, 2 ** 50], [0, 2 ** 50 - 1], [7, 2 ** 40 + 12345], [40, 1023], [50, 3]] as const) {
      const i = storedHashIndex(level, n)
      expect(Number.isSafeInteger(i)).toBe(true)
      expect(splitStoredHashIndex(i)).toEqual({ level, n })
    }
    // Every index splits to coordinates that map back to it.
    for (let i = 0; i < 5000; i++) {
      const { level, n } = splitStoredHashIndex(i)
      expect(storedHashIndex(level, n)).toBe(i)
    }
  })

  it('storedHashCount counts the hashes of n leaves', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map(storedHashCount)).toEqual([0, 1, 3, 4, 7, 8, 10, 11, 15])
    expect(storedHashCount(2 ** 40)).toBe(2 ** 41 - 1)
  })

  it('rejects negative, fractional and unsafe arguments with RangeError', () => {
    for (const bad of [-1, 0.5, NaN, Infinity, 2 ** 53]) {
      expect(() => storedHashIndex(0, bad)).toThrow(RangeError)
      expect(() => splitStoredHashIndex(bad)).toThrow(RangeError)
      expect(() => storedHashCount(bad)).toThrow(RangeError)
    }
    expect(() => storedHashIndex(-1, 0)).toThrow(RangeError)
    expect(() => storedHashIndex(64, 0)).toThrow(RangeError)
    expect(() => storedHashIndex(1.5, 0)).toThrow(RangeError)
    expect(storedHashIndex(0, 2 ** 52)).toBe(Number.MAX_SAFE_INTEGER) // the last representable index
    expect(() => storedHashIndex(0, 2 ** 52 + 1)).toThrow(RangeError)
    expect(() => storedHashIndex(20, 2 ** 40)).toThrow(RangeError)
  })
})

describe('storedHashes, treeHash and MemoryHashStore', () => {
  it('storedHashes returns what MemoryHashStore.append stores, reading one batch of siblings', async () => {
    const store = new MemoryHashStore()
    for (let n = 0; n < 600; n++) {
      const leaf = leafHash(entry(n))
      const r = checkingReader(store)
      const want = await storedHashes(n, leaf, r)
      expect(r.calls).toBe((n + 1) % 2 === 0 ? 1 : 0) // reads only when leaf n completes a subtree
      let tz = 0
      while ((n + 1) % 2 ** (tz + 1) === 0) tz++
      expect(want).toHaveLength(1 + tz)
      expect(store.append(leaf)).toBe(n)
      const got = await store.readHashes(want.map((_, i) => storedHashIndex(0, n) + i))
      expect(got.map(hex)).toEqual(want.map(hex))
      expect(store.storedCount).toBe(storedHashCount(n + 1))
    }
  })

  it('treeHash equals the naive MTH for every size 0..600, in one read of ≤ 1+log2(size) hashes', async () => {
    const store = storeOf(600)
    const ref = new ReferenceTree(Array.from({ length: 600 }, (_, i) => refLeafHash(entry(i))))
    for (let size = 0; size <= 600; size++) {
      let asked = 0
      const r = checkingReader({
        readHashes: (ix) => {
          asked = ix.length
          return store.readHashes(ix)
        },
      })
      expect(hex(await treeHash(size, r))).toBe(hex(ref.mth(0, size)))
      expect(r.calls).toBe(size === 0 ? 0 : 1)
      expect(asked).toBeLessThanOrEqual(1 + Math.log2(Math.max(size, 1)))
    }
  })

  it('MemoryHashStore copies hashes in and out and bounds reads', async () => {
    const store = new MemoryHashStore()
    const leaf = leafHash(entry(0))
    store.append(leaf)
    leaf[0]! ^= 0xff
    const [got] = await store.readHashes([0])
    expect(hex(got!)).toBe(hex(leafHash(entry(0))))
    got![0]! ^= 0xff
    expect(hex((await store.readHashes([0]))[0]!)).toBe(hex(leafHash(entry(0))))
    await expect(store.readHashes([1])).rejects.toThrow(RangeError)
    await expect(store.readHashes([-1])).rejects.toThrow(RangeError)
    expect(() => store.append(new Uint8Array(31))).toThrow(RangeError)
    expect(store.size).toBe(1)
  })

  it('treeHash and storedHashes reject a HashReader returning the wrong number of hashes', async () => {
    const short = { readHashes: async () => [] }
    await expect(treeHash(3, short)).rejects.toThrow(/readHashes/)
    await expect(storedHashes(1, leafHash(entry(1)), short)).rejects.toThrow(/readHashes/)
    await expect(treeHash(-1, short)).rejects.toThrow(RangeError)
    await expect(storedHashes(0, new Uint8Array(5), short)).rejects.toThrow(RangeError)
  })
})
