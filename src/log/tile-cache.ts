/**
 * The hash tiles (c2sp.org/tlog-tiles) the log engine keeps in memory, shared by every open log of
 * a process and bounded by bytes: the engine never holds a log's stored hashes in memory, it reads
 * the tiles it needs through this cache.
 *
 * Two budgets, each a least-recently-used {@link ByteLru}:
 * - level-0 tiles (the leaf rows: one tile per 256 entries, read by appends at the right edge and
 *   by inclusion proofs anywhere in the tree);
 * - upper tiles, levels ≥ 1 (one per 65,536 entries at level 1; they change only at the right
 *   edge, and every inclusion and consistency proof reads one per level), kept apart so a burst of
 *   level-0 reads never evicts them: this is what keeps proof latency flat in large logs.
 *
 * Each cached tile keeps its row of hashes and, computed on first use, the rows of the 7 tree
 * levels inside it (at most as many bytes again), so a stored hash inside a tile costs one lookup,
 * not a re-hash of the hashes under it.
 */
import { type Hash, HASH_SIZE, parentRow } from '../tlog/index.js'
import { ByteLru } from '../storage/byte-lru.js'

/** Default bytes of level-0 tiles kept by a process (`--tile-cache-bytes`): 16 MiB, ~1,000 tiles with their inner rows. */
export const DEFAULT_TILE_CACHE_BYTES = 16 * 2 ** 20
/**
 * Default bytes of upper tiles (levels ≥ 1) kept by a process (`--upper-tile-cache-bytes`): 16 MiB,
 * the upper tiles of ~1,000 M entries in all (~16 KiB per 65,536 entries).
 */
export const DEFAULT_UPPER_TILE_CACHE_BYTES = 16 * 2 ** 20

/** Bytes of one row object besides its hashes (typed-array header, array slot). */
const ROW_OVERHEAD_BYTES = 96

/**
 * A tile in the cache: its `width` hashes (row 0) and the rows above it inside the tile, computed on
 * demand. Immutable once cached, apart from rows being filled in: a wider version of the same tile
 * replaces it.
 */
export class CachedTile {
  /** rows[r]: the ⌊width/2^r⌋ hashes of tree level 8·level + r under this tile, concatenated. */
  private readonly rows: Uint8Array[]

  /** @param data the tile's contents, width·32 bytes (kept, not copied: the caller must not change it). */
  constructor(readonly width: number, data: Uint8Array) {
    this.rows = [data]
  }

  /** Bytes this tile holds now (its rows plus overhead). */
  get bytes(): number {
    return this.rows.reduce((n, r) => n + r.length + ROW_OVERHEAD_BYTES, 0)
  }

  /** The bytes this tile will hold with every inner row computed (what the cache charges for it). */
  get maxBytes(): number {
    let n = 0
    for (let w = this.width; w >= 1; w >>= 1) n += w * HASH_SIZE + ROW_OVERHEAD_BYTES
    return n
  }

  /**
   * Hash `pos` of row `r` (0..7) of this tile: a copy (callers may keep it without holding the tile).
   * @throws RangeError when the tile is too narrow to hold it.
   */
  hash(r: number, pos: number): Hash {
    const row = this.row(r)
    if ((pos + 1) * HASH_SIZE > row.length) throw new RangeError(`hash ${pos} of row ${r} is not in a tile of width ${this.width}`)
    return row.slice(pos * HASH_SIZE, (pos + 1) * HASH_SIZE)
  }

  private row(r: number): Uint8Array {
    for (let k = this.rows.length; k <= r; k++) this.rows.push(parentRow(this.rows[k - 1]!))
    return this.rows[r]!
  }
}

/** Budgets of a {@link TileCache}, bytes (integers ≥ 0; 0 keeps no tile of that kind). */
export interface TileCacheOptions {
  /** Level-0 tiles; default {@link DEFAULT_TILE_CACHE_BYTES}. */
  bytes?: number
  /** Tiles of levels ≥ 1; default {@link DEFAULT_UPPER_TILE_CACHE_BYTES}. */
  upperBytes?: number
}

/**
 * The tile cache of a process (see the module comment). Keys are `<owner>/<level>/<index>`, the
 * owner being one open log's reader ({@link TileCache.owner}), so logs never see each other's tiles.
 */
export class TileCache {
  private readonly leaves: ByteLru<string, CachedTile>
  private readonly upper: ByteLru<string, CachedTile>
  private owners = 0

  /** @throws RangeError on a budget that is not an integer ≥ 0. */
  constructor(o: TileCacheOptions = {}) {
    this.leaves = new ByteLru(o.bytes ?? DEFAULT_TILE_CACHE_BYTES)
    this.upper = new ByteLru(o.upperBytes ?? DEFAULT_UPPER_TILE_CACHE_BYTES)
  }

  /** A fresh owner id, one per log reader (a reopened log gets a new one: its old tiles age out). */
  owner(): number {
    return ++this.owners
  }

  /** Bytes held now: level-0 tiles and upper tiles. */
  get bytes(): { leaves: number; upper: number } {
    return { leaves: this.leaves.bytes, upper: this.upper.bytes }
  }

  /** The cached tile (level, index) of `owner`, if any; marks it recently used. */
  get(owner: number, level: number, index: number): CachedTile | undefined {
    return (level === 0 ? this.leaves : this.upper).get(`${owner}/${level}/${index}`)
  }

  /**
   * Caches tile (level, index) of `owner` with its contents `data` (width·32 bytes, not copied),
   * replacing a narrower one. Returns the cached tile (or an uncached one when the budget is 0).
   */
  put(owner: number, level: number, index: number, data: Uint8Array): CachedTile {
    const tile = new CachedTile(data.length / HASH_SIZE, data)
    const lru = level === 0 ? this.leaves : this.upper
    const key = `${owner}/${level}/${index}`
    const old = lru.get(key)
    if (old !== undefined && old.width > tile.width) return old
    lru.set(key, tile, tile.maxBytes)
    return tile
  }
}

let shared: TileCache | undefined
/** The process-wide tile cache with the default budgets, for logs opened without one. */
export function sharedTileCache(): TileCache {
  return (shared ??= new TileCache())
}
