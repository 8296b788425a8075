import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MemoryHashStore, leafHash, storedHashCount, storedHashIndex, treeHash } from '../../src/tlog/hash.js'
import { InvalidProofError, checkRecord, checkTree, proveRecord, proveTree } from '../../src/tlog/proof.js'
import {
  MalformedTilePathError,
  TILE_HEIGHT,
  TILE_WIDTH,
  type Tile,
  entryBundlePath,
  hashFromTile,
  newTiles,
  parseTilePath,
  readTileData,
  tileForIndex,
  tileHashReader,
  tilePath,
  tileWidth,
} from '../../src/tlog/tile.js'
import { MemoryTiles, entry, flip, hex, storeOf } from './fixtures.js'

const paths = (ts: Tile[]): string[] => ts.map(tilePath)

describe('tile paths (c2sp.org/tlog-tiles)', () => {
  it('encodes the index in 3-digit groups, x on all but the last (spec examples)', () => {
    const cases: [number, string][] = [
      [0, '000'],
      [1, '001'],
      [999, '999'],
      [1000, 'x001/000'],
      [1234067, 'x001/x234/067'],
      [123456789, 'x123/x456/789'],
      [Number.MAX_SAFE_INTEGER, 'x009/x007/x199/x254/x740/991'],
    ]
    for (const [index, enc] of cases) {
      expect(tilePath({ level: 0, index, width: 256 })).toBe(`tile/0/${enc}`)
      expect(entryBundlePath(index, 256)).toBe(`tile/entries/${enc}`)
    }
    expect(tilePath({ level: 0, index: 1234067, width: 5 })).toBe('tile/0/x001/x234/067.p/5')
    expect(entryBundlePath(0, 7)).toBe('tile/entries/000.p/7')
    expect(tilePath({ level: 63, index: 0, width: 255 })).toBe('tile/63/000.p/255')
  })

  it('parses the x/mod tile_test paths, translated to C2SP (no height; data → entries)', () => {
    expect(parseTilePath('tile/5/x123/x456/078')).toEqual({ kind: 'tile', tile: { level: 5, index: 123456078, width: 256 } })
    expect(parseTilePath('tile/5/x123/x456/078.p/2')).toEqual({ kind: 'tile', tile: { level: 5, index: 123456078, width: 2 } })
    expect(parseTilePath('tile/0/001')).toEqual({ kind: 'tile', tile: { level: 0, index: 1, width: 256 } })
    expect(parseTilePath('tile/0/001.p/5')).toEqual({ kind: 'tile', tile: { level: 0, index: 1, width: 5 } })
    expect(parseTilePath('tile/entries/x003/x057/500')).toEqual({ kind: 'entries', index: 3057500, width: 256 })
    expect(parseTilePath('tile/entries/000.p/255')).toEqual({ kind: 'entries', index: 0, width: 255 })
  })

  const hostile = [
    '', 'tile', 'tile/', 'tile/0', 'tile/0/', '/tile/0/000', 'tile/0/000/', 'tiles/0/000', 'TILE/0/000',
    'tile/5/123/456/078', // missing x (x/mod tile_test)
    'tile/-1/000', 'tile/-1/x123/x456/078',
    'tile/00/000', 'tile/01/000', 'tile/64/000', 'tile/100/000', 'tile/+1/000', 'tile/1e1/000', 'tile/data/000', 'tile/8/0/000',
    'tile/0/00', 'tile/0/0000', 'tile/0/1', 'tile/0/x001', 'tile/0/x001/x002', 'tile/0/001/002', 'tile/0/x1/000',
    'tile/0/x0001/000', 'tile/0/X001/000', 'tile/0/x000/001', 'tile/0/x000/x001/002', 'tile/0/xx01/000',
    'tile/0/000.p/0', 'tile/0/000.p/00', 'tile/0/000.p/05', 'tile/0/000.p/256', 'tile/0/000.p/300', 'tile/0/000.p/1000',
    'tile/0/000.p/', 'tile/0/000.p', 'tile/0/000.p/5/', 'tile/0/000.p/5/6', 'tile/0/000.p/-5', 'tile/0/000.p/+5', 'tile/0/000.q/5',
    'tile/0/../000', 'tile/../0/000', 'tile/0/./000', 'tile/0//000', 'tile/0/000/..', 'tile/entries/../0/000',
    'tile/entries/000.p/256', 'tile/entries/000.p/0', 'tile/entries/00', 'tile/entries', 'tile/entries/',
    'tile/0/000 ', ' tile/0/000', 'tile/0/000\n', 'tile\\0\\000', 'tile/0/٠٠٠', 'tile/0/x009/x007/x199/x254/x740/x992/000',
    'tile/0/x009/x007/x199/x254/x740/992', // 2^53: not a safe integer
    `tile/0/${'x000/'.repeat(40)}000`,
  ]
  it.each(hostile)('rejects %j', (p) => {
    expect(() => parseTilePath(p)).toThrow(MalformedTilePathError)
  })

  it('rejects invalid tiles when formatting', () => {
    for (const t of [
      { level: -1, index: 0, width: 1 },
      { level: 64, index: 0, width: 1 },
      { level: 0, index: -1, width: 1 },
      { level: 0, index: 0.5, width: 1 },
      { level: 0, index: 2 ** 53, width: 1 },
      { level: 0, index: 0, width: 0 },
      { level: 0, index: 0, width: 257 },
    ]) {
      expect(() => tilePath(t)).toThrow(RangeError)
    }
    expect(() => entryBundlePath(0, 0)).toThrow(RangeError)
    expect(() => entryBundlePath(-1, 1)).toThrow(RangeError)
  })

  it('property: every tile and bundle path round-trips', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 63 }), fc.maxSafeNat(), fc.integer({ min: 1, max: 256 }), (level, index, width) => {
        const t = { level, index, width }
        expect(parseTilePath(tilePath(t))).toEqual({ kind: 'tile', tile: t })
        expect(parseTilePath(entryBundlePath(index, width))).toEqual({ kind: 'entries', index, width })
      }),
      { numRuns: 2000 },
    )
  })

  it('property: any string that parses is the canonical encoding of what it parses to', () => {
    // Near-miss paths: a valid prefix followed by random path fragments.
    const parts = ['/', 'x', '0', '1', '5', '9', '00', '000', '001', 'x001/', '.p/', '.p', '25', '255', '256', '63', '64', '.', '-', 'entries']
    let parsedCount = 0
    fc.assert(
      fc.property(fc.constantFrom('tile/', 'tile/0/', 'tile/entries/', 'tile/63/', ''), fc.array(fc.constantFrom(...parts), { maxLength: 10 }), (prefix, ps) => {
        const p = prefix + ps.join('')
        let parsed
        try {
          parsed = parseTilePath(p)
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedTilePathError)
          return
        }
        parsedCount++
        expect(parsed.kind === 'tile' ? tilePath(parsed.tile) : entryBundlePath(parsed.index, parsed.width)).toBe(p)
      }),
      { numRuns: 20000 },
    )
    expect(parsedCount).toBeGreaterThan(100) // the generator does reach valid paths
  })

  it('MalformedTilePathError has a stable name', () => {
    expect(new MalformedTilePathError('x').name).toBe('MalformedTilePathError')
  })
})

describe('newTiles', () => {
  it('size 70,000 from empty (spec example)', () => {
    const tiles = newTiles(0, 70000)
    const l0 = tiles.filter((t) => t.level === 0)
    expect(l0).toHaveLength(274)
    expect(l0.slice(0, 273).every((t, i) => t.index === i && t.width === 256)).toBe(true)
    expect(paths(tiles.slice(273))).toEqual(['tile/0/273.p/112', 'tile/1/000', 'tile/1/001.p/17', 'tile/2/000.p/1'])
  })

  it('sizes 256 and 300 (c2sp.org/tlog-tiles)', () => {
    expect(paths(newTiles(0, 256))).toEqual(['tile/0/000', 'tile/1/000.p/1'])
    expect(paths(newTiles(0, 300))).toEqual(['tile/0/000', 'tile/0/001.p/44', 'tile/1/000.p/1'])
    expect(paths(newTiles(256, 300))).toEqual(['tile/0/001.p/44'])
    expect(paths(newTiles(255, 256))).toEqual(['tile/0/000', 'tile/1/000.p/1'])
    expect(paths(newTiles(300, 301))).toEqual(['tile/0/001.p/45'])
    expect(paths(newTiles(300, 512))).toEqual(['tile/0/001', 'tile/1/000.p/2'])
    expect(paths(newTiles(0, 1))).toEqual(['tile/0/000.p/1'])
    expect(paths(newTiles(65535, 65536))).toEqual(['tile/0/255', 'tile/1/000', 'tile/2/000.p/1'])
    expect(newTiles(0, 0)).toEqual([])
    expect(newTiles(300, 300)).toEqual([])
  })

  it('grows a log one entry at a time: every tile the final tree needs is written, never an empty one', () => {
    const written = new Map<string, number>()
    for (let size = 0; size < 1100; size++) {
      for (const t of newTiles(size, size + 1)) {
        expect(t.width).toBeGreaterThan(0)
        written.set(tilePath(t), (written.get(tilePath(t)) ?? 0) + 1)
      }
    }
    // Every tile is written once (full tiles and each partial width).
    expect([...written.values()].every((n) => n === 1)).toBe(true)
    for (const t of newTiles(0, 1100)) expect(written.has(tilePath(t))).toBe(true)
    // One partial tile per size at level 0: 1100 sizes, 4 full tiles.
    expect([...written.keys()].filter((p) => p.startsWith('tile/0/')).length).toBe(1100)
  })

  it('rejects shrinking and invalid sizes', () => {
    expect(() => newTiles(5, 4)).toThrow(RangeError)
    expect(() => newTiles(-1, 4)).toThrow(RangeError)
    expect(() => newTiles(0, 1.5)).toThrow(RangeError)
  })
})

describe('tileWidth', () => {
  it('is the width newTiles gives each tile of a tree of that size, and 0 past the tree', () => {
    for (const size of [0, 1, 255, 256, 257, 300, 65535, 65536, 70000]) {
      const widths = new Map(newTiles(0, size).map((t) => [`${t.level}/${t.index}`, t.width]))
      for (let level = 0; level < 3; level++) {
        for (let index = 0; index < 300; index++) expect(tileWidth(level, index, size), `${level}/${index} at ${size}`).toBe(widths.get(`${level}/${index}`) ?? 0)
      }
    }
  })
})

describe('tile contents', () => {
  it('tileForIndex finds the least-width tile for hashes inside and above the tile row', () => {
    expect(TILE_HEIGHT).toBe(8)
    expect(TILE_WIDTH).toBe(256)
    expect(tileForIndex(storedHashIndex(0, 0))).toEqual({ level: 0, index: 0, width: 1 })
    expect(tileForIndex(storedHashIndex(0, 300))).toEqual({ level: 0, index: 1, width: 45 })
    expect(tileForIndex(storedHashIndex(1, 0))).toEqual({ level: 0, index: 0, width: 2 })
    expect(tileForIndex(storedHashIndex(7, 1))).toEqual({ level: 0, index: 0, width: 256 })
    expect(tileForIndex(storedHashIndex(8, 0))).toEqual({ level: 1, index: 0, width: 1 })
    expect(tileForIndex(storedHashIndex(9, 3))).toEqual({ level: 1, index: 0, width: 8 })
    expect(tileForIndex(storedHashIndex(16, 257))).toEqual({ level: 2, index: 1, width: 2 })
  })

  it('hashFromTile reproduces every stored hash of a 70,000-entry tree from its tiles', async () => {
    const store = storeOf(70000)
    const tiles = newTiles(0, 70000)
    const data = new Map<string, Uint8Array>()
    for (const t of tiles) data.set(tilePath(t), await readTileData(t, store))
    expect(data.get('tile/2/000.p/1')).toHaveLength(32)
    expect(hex(data.get('tile/2/000.p/1')!)).toBe(hex(await treeHash(65536, store)))
    const count = storedHashCount(70000)
    for (let i = 0; i < count; i += 7) {
      const t = tileForIndex(i)
      const full = tiles.find((u) => u.level === t.level && u.index === t.index)!
      const [want] = await store.readHashes([i])
      expect(hex(hashFromTile(full, data.get(tilePath(full))!, i))).toBe(hex(want!))
    }
  })

  it('hashFromTile rejects a tile that does not hold the index, or short data', async () => {
    const store = storeOf(300)
    const d = await readTileData({ level: 0, index: 0, width: 256 }, store)
    expect(() => hashFromTile({ level: 0, index: 1, width: 256 }, d, 0)).toThrow(RangeError)
    expect(() => hashFromTile({ level: 0, index: 0, width: 4 }, d, storedHashIndex(0, 4))).toThrow(RangeError)
    expect(() => hashFromTile({ level: 0, index: 0, width: 256 }, d.subarray(32), 0)).toThrow(RangeError)
    expect(() => hashFromTile({ level: 1, index: 0, width: 1 }, d, 0)).toThrow(RangeError)
  })
})

describe('tileHashReader', () => {
  async function server(sizes: number[]): Promise<{ store: MemoryHashStore; tiles: MemoryTiles }> {
    const store = storeOf(sizes.at(-1)!)
    const tiles = new MemoryTiles()
    for (const s of sizes) await tiles.grow(store, s)
    return { store, tiles }
  }
  let shared: Promise<{ store: MemoryHashStore; tiles: MemoryTiles }> | undefined
  /** One 70,000-entry log with all its tiles, shared by the tests that restore what they change. */
  const big = (): Promise<{ store: MemoryHashStore; tiles: MemoryTiles }> => (shared ??= server([70000]))

  it('serves proofs over tiles equal to the ones from stored hashes, for sizes around tile boundaries', async () => {
    const sizes = [1, 2, 3, 255, 256, 257, 300, 511, 512, 513, 4096, 65535, 65536, 65537, 70000]
    const { store, tiles } = await server(sizes)
    // Tiles of the final size plus stale partials of earlier sizes (prefixes of the final data).
    for (const size of sizes) {
      const root = await treeHash(size, store)
      const thr = tileHashReader(size, root, tiles)
      // treeHash over tiles authenticates and recomputes the root; partial tiles of later sizes exist,
      // so a reader at an old size falls back to the prefix of whatever tile is wider.
      expect(hex(await treeHash(size, thr))).toBe(hex(root))
      for (const index of new Set([0, 1, Math.floor(size / 3), size - 2, size - 1].filter((i) => i >= 0 && i < size))) {
        const p = await proveRecord(size, index, thr)
        expect(p.map(hex)).toEqual((await proveRecord(size, index, store)).map(hex))
        checkRecord(p, size, root, index, leafHash(entry(index)))
        const q = await proveTree(size, index + 1, thr)
        expect(q.map(hex)).toEqual((await proveTree(size, index + 1, store)).map(hex))
        checkTree(q, size, root, index + 1, await treeHash(index + 1, store))
      }
    }
  })

  it('makes one readTiles call per readHashes call and reads nothing for an empty request', async () => {
    const { store, tiles } = await big()
    const thr = tileHashReader(70000, await treeHash(70000, store), tiles)
    tiles.calls = 0
    expect(await thr.readHashes([])).toEqual([])
    expect(tiles.calls).toBe(0)
    await proveRecord(70000, 12345, thr)
    expect(tiles.calls).toBe(1)
  })

  it('authenticates a full tile that shares no tile with the right edge (x/mod v0.7.0 serves it unchecked)', async () => {
    // Size 300: the right edge is tile/1/000.p/1 and tile/0/001.p/44 (three edge hashes in the
    // latter). Leaf 5 lives in tile/0/000, which must be checked against tile/1/000.p/1.
    const { store, tiles } = await server([300])
    const root = await treeHash(300, store)
    const good = tiles.files.get('tile/0/000')!
    tiles.files.set('tile/0/000', flip(good, 5 * 32))
    const thr = tileHashReader(300, root, tiles)
    await expect(thr.readHashes([storedHashIndex(0, 5)])).rejects.toThrow(InvalidProofError)
    // A proof that needs only right-edge tiles (MTH(0..256) is the hash in tile/1/000.p/1) still works.
    expect((await proveRecord(300, 299, thr)).map(hex)).toEqual((await proveRecord(300, 299, store)).map(hex))
    tiles.files.set('tile/0/000', good)
    expect(hex((await thr.readHashes([storedHashIndex(0, 5)]))[0]!)).toBe(hex(leafHash(entry(5))))
  })

  it('rejects a corrupted or truncated tile at any level before serving any hash', async () => {
    const { store, tiles } = await big()
    const root = await treeHash(70000, store)
    const thr = tileHashReader(70000, root, tiles)
    // Leaves in full tiles 0, 137 and 272 and the partial tile 273, and hashes at levels 8 and 16:
    // together they need every level-1 and level-2 tile too.
    const indexes = [
      storedHashIndex(0, 3), storedHashIndex(0, 137 * 256 + 200), storedHashIndex(0, 272 * 256 + 255), storedHashIndex(0, 69999),
      storedHashIndex(8, 0), storedHashIndex(8, 272), storedHashIndex(16, 0),
    ].sort((a, b) => a - b)
    expect((await thr.readHashes(indexes)).map(hex)).toEqual((await store.readHashes(indexes)).map(hex))
    const touched = ['tile/0/000', 'tile/0/137', 'tile/0/272', 'tile/0/273.p/112', 'tile/1/000', 'tile/1/001.p/17', 'tile/2/000.p/1']
    for (const path of touched) {
      const good = tiles.files.get(path)!
      expect(good, path).toBeDefined()
      for (const bad of [flip(good, good.length - 1, 3), flip(good, 0, 0), good.subarray(0, good.length - 32), new Uint8Array([...good, 0])]) {
        tiles.files.set(path, bad)
        await expect(thr.readHashes(indexes), path).rejects.toThrow(InvalidProofError)
      }
      tiles.files.set(path, good)
    }
    expect((await thr.readHashes(indexes)).map(hex)).toEqual((await store.readHashes(indexes)).map(hex))
  })

  it('rejects a wrong root, and indexes outside the tree', async () => {
    const { store, tiles } = await server([300])
    const root = await treeHash(300, store)
    await expect(tileHashReader(300, flip(root), tiles).readHashes([0])).rejects.toThrow(InvalidProofError)
    await expect(tileHashReader(256, root, tiles).readHashes([0])).rejects.toThrow(InvalidProofError) // root of another size
    const thr = tileHashReader(300, root, tiles)
    await expect(thr.readHashes([storedHashCount(300)])).rejects.toThrow(RangeError)
    await expect(thr.readHashes([-1])).rejects.toThrow(RangeError)
    await expect(tileHashReader(0, root, tiles).readHashes([0])).rejects.toThrow(RangeError)
    expect(() => tileHashReader(300, root.subarray(1), tiles)).toThrow(RangeError)
    expect(() => tileHashReader(-1, root, tiles)).toThrow(RangeError)
  })

  it('rejects a TileReader returning the wrong number of tiles', async () => {
    const { store } = await server([10])
    const thr = tileHashReader(10, await treeHash(10, store), { readTiles: async () => [] })
    await expect(thr.readHashes([0])).rejects.toThrow(/readTiles/)
  })
})
