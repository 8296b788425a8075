/**
 * The engine's bounded tile cache (src/log/tile-cache.ts, src/storage/byte-lru.ts) and the reader
 * over it (src/log/tile-hashes.ts): every stored hash read through it equals the independently built
 * tree's, whatever the budgets (including none); the byte bounds hold; the upper tiles have their own
 * budget, so level-0 reads never evict them.
 */
import { describe, expect, it } from 'vitest'
import { ByteLru, ENTRY_OVERHEAD_BYTES } from '../../src/storage/byte-lru.js'
import { TileCache } from '../../src/log/tile-cache.js'
import { MissingTileError, TileHashes } from '../../src/log/tile-hashes.js'
import { MemoryHashStore, leafHash, newTiles, nodeHash, parentRow, proveRecord, proveTree, readTileData, storedHashCount, tilePath, treeHash } from '../../src/tlog/index.js'
import { MemoryFiles } from '../helpers/memory-files.js'

/** A tree of `n` entries in memory, and its tiles written to a MemoryFiles as the engine writes them. */
async function tree(n: number) {
  const mem = new MemoryHashStore()
  for (let i = 0; i < n; i++) mem.append(leafHash(new TextEncoder().encode(`e${i}`)))
  const files = new MemoryFiles()
  const tiles = newTiles(0, n)
  await files.write(await Promise.all(tiles.map(async (t) => [tilePath(t), await readTileData(t, mem)] as [string, Uint8Array])))
  return { mem, files }
}

describe('ByteLru', () => {
  it('never holds more than maxBytes, drops the least recently used first, and refuses values larger than the bound', () => {
    const lru = new ByteLru<string, number>(3 * (100 + ENTRY_OVERHEAD_BYTES))
    lru.set('a', 1, 100)
    lru.set('b', 2, 100)
    lru.set('c', 3, 100)
    expect(lru.get('a')).toBe(1) // a is now the most recent
    lru.set('d', 4, 100)
    expect(lru.get('b')).toBeUndefined()
    expect([lru.get('a'), lru.get('c'), lru.get('d')]).toEqual([1, 3, 4])
    expect(lru.bytes).toBeLessThanOrEqual(lru.maxBytes)
    lru.set('big', 5, lru.maxBytes)
    expect(lru.get('big')).toBeUndefined()
    expect(lru.size).toBe(3)
    lru.set('a', 6, 250) // replacing re-charges it
    expect(lru.bytes).toBeLessThanOrEqual(lru.maxBytes)
    expect(lru.get('a')).toBe(6)
    expect(() => new ByteLru(-1)).toThrow(RangeError)
    expect(new ByteLru(0).bytes).toBe(0)
  })
})

describe('TileHashes over a TileCache', () => {
  for (const [name, budgets] of [
    ['default budgets', {}],
    ['no cache at all', { bytes: 0, upperBytes: 0 }],
    ['room for one tile of each kind', { bytes: 20_000, upperBytes: 20_000 }],
  ] as const) {
    it(`reads every stored hash of a 70,000-entry tree exactly as the tree has it (${name})`, async () => {
      const n = 70_000 // three levels of tiles: level 1 has a full tile and a partial one
      const { mem, files } = await tree(n)
      const reader = new TileHashes(files, n, new TileCache(budgets))
      const count = storedHashCount(n)
      const indexes = Array.from({ length: 3000 }, (_, k) => (k * 7919 + (k % 5)) % count)
      indexes.push(count - 1, 0, count - 2)
      expect(await reader.readHashes(indexes)).toEqual(await mem.readHashes(indexes))
      expect(await treeHash(n, reader)).toEqual(await treeHash(n, mem))
      for (const [size, index] of [[n, 0], [n, n - 1], [65_536, 65_535], [40_000, 12_345], [n, 65_536]]) {
        expect(await proveRecord(size!, index!, reader)).toEqual(await proveRecord(size!, index!, mem))
      }
      expect(await proveTree(n, 1234, reader)).toEqual(await proveTree(n, 1234, mem))
    })
  }

  it('refuses a hash beyond the committed size, and names a missing tile', async () => {
    const { files } = await tree(300)
    const reader = new TileHashes(files, 300, new TileCache())
    await expect(reader.readHashes([storedHashCount(300)])).rejects.toThrow(MissingTileError)
    files.files.delete('tile/0/001.p/44')
    await expect(reader.readHashes([storedHashCount(300) - 1])).rejects.toMatchObject({ name: 'MissingTileError', path: 'tile/0/001.p/44' })
  })

  it('keeps within its byte budgets, and level-0 reads never evict upper tiles', async () => {
    const n = 70_000
    const { files } = await tree(n)
    const cache = new TileCache({ bytes: 64 * 1024, upperBytes: 64 * 1024 })
    const reader = new TileHashes(files, n, cache)
    await proveRecord(n, 1, reader) // reads the upper tiles: level 1 (full and partial) and level 2
    await proveRecord(n, n - 1, reader)
    const upper = cache.bytes.upper
    expect(upper).toBeGreaterThan(0)
    let reads = 0
    const read = files.read.bind(files)
    files.read = async (p: string) => {
      if (!p.startsWith('tile/0/')) reads++
      return read(p)
    }
    for (let i = 0; i < n; i += 97) await proveRecord(n, i, reader) // far more level-0 tiles than fit
    expect(cache.bytes.leaves).toBeLessThanOrEqual(64 * 1024)
    expect(cache.bytes.upper).toBeLessThanOrEqual(64 * 1024)
    expect(reads).toBe(0) // no upper tile was read again
  })

  it('keeps logs apart: two readers of different trees on one cache each read their own tiles', async () => {
    const a = await tree(600)
    const b = await tree(700)
    const cache = new TileCache()
    const ra = new TileHashes(a.files, 600, cache)
    const rb = new TileHashes(b.files, 700, cache)
    expect(await treeHash(600, ra)).toEqual(await treeHash(600, a.mem))
    expect(await treeHash(700, rb)).toEqual(await treeHash(700, b.mem))
    expect(await proveRecord(600, 5, ra)).toEqual(await proveRecord(600, 5, a.mem))
    expect(await proveRecord(600, 5, rb)).toEqual(await proveRecord(600, 5, b.mem))
  })
})

describe('parentRow (src/tlog/hash.ts)', () => {
  it('hashes pairs exactly as nodeHash does, drops a trailing odd hash, and refuses a partial hash', () => {
    const row = new Uint8Array(7 * 32).map((_, i) => (i * 31 + 7) & 0xff)
    const h = (k: number) => row.subarray(k * 32, (k + 1) * 32)
    const up = parentRow(row)
    expect(up.length).toBe(3 * 32)
    for (let j = 0; j < 3; j++) expect(up.subarray(j * 32, (j + 1) * 32)).toEqual(nodeHash(h(2 * j), h(2 * j + 1)))
    expect(parentRow(new Uint8Array(0))).toEqual(new Uint8Array(0))
    expect(() => parentRow(new Uint8Array(33))).toThrow(RangeError)
  })
})
