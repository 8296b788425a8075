/** Shared helpers for the src/tlog tests. */
import { expect } from 'vitest'
import { type Hash, type HashReader, MemoryHashStore, leafHash } from '../../src/tlog/hash.js'
import { type Tile, type TileReader, TILE_WIDTH, newTiles, readTileData, tilePath } from '../../src/tlog/tile.js'

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
export const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))
export const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

/** The entry "leaf i", the x/mod tlog_test convention used by the Go vectors. */
export const entry = (i: number): Uint8Array => utf8(`leaf ${i}`)

/** A MemoryHashStore holding entries "leaf 0".."leaf n-1". */
export function storeOf(n: number): MemoryHashStore {
  const s = new MemoryHashStore()
  for (let i = 0; i < n; i++) s.append(leafHash(entry(i)))
  return s
}

/**
 * Wraps a HashReader, asserting (like x/mod's test storage) that every call asks for strictly
 * increasing indexes, and counting calls.
 */
export function checkingReader(r: HashReader): HashReader & { calls: number } {
  const w = {
    calls: 0,
    async readHashes(indexes: readonly number[]): Promise<Hash[]> {
      w.calls++
      for (let i = 1; i < indexes.length; i++) expect(indexes[i]!).toBeGreaterThan(indexes[i - 1]!)
      return r.readHashes(indexes)
    },
  }
  return w
}

/** Flips one bit of a copy of h. */
export function flip(h: Uint8Array, byte = 0, bit = 0): Uint8Array {
  const c = h.slice()
  c[byte]! ^= 1 << bit
  return c
}

/**
 * An in-memory tile server: `grow(store, newSize)` writes the tiles newTiles lists for each growth
 * step, as a log would; `readTiles` serves them by c2sp path, falling back to the prefix of the
 * full tile when a partial tile is missing (as x/mod's client does).
 */
export class MemoryTiles implements TileReader {
  readonly files = new Map<string, Uint8Array>()
  size = 0
  reads = 0
  calls = 0

  async grow(store: HashReader, newSize: number): Promise<Tile[]> {
    const tiles = newTiles(this.size, newSize)
    for (const t of tiles) this.files.set(tilePath(t), await readTileData(t, store))
    this.size = newSize
    return tiles
  }

  async readTiles(tiles: readonly Tile[]): Promise<Uint8Array[]> {
    this.calls++
    return tiles.map((t) => {
      this.reads++
      const d = this.files.get(tilePath(t))
      if (d !== undefined) return d
      const full = this.files.get(tilePath({ ...t, width: TILE_WIDTH }))
      if (full !== undefined) return full.subarray(0, t.width * 32)
      throw new Error(`no tile ${tilePath(t)}`)
    })
  }
}
