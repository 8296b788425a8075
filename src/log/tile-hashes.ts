/**
 * A stored-hash reader over one log's hash tiles (c2sp.org/tlog-tiles), with an in-memory overlay
 * for the hashes of a batch that is being integrated and not yet written.
 *
 * No stored hash is kept in memory for long: every read goes through the process's bounded
 * {@link TileCache} (tile-cache.ts), falling back to the tile file. Tiles only ever grow to the
 * right, so the tile on disk for the committed tree size holds every hash any older tree size
 * needs: proofs for older checkpoints read the current tiles.
 */
import { type Hash, type HashReader, TILE_HEIGHT, TILE_WIDTH, type Tile, splitStoredHashIndex, tilePath, tileWidth } from '../tlog/index.js'
import type { LogFiles } from './storage.js'
import { type CachedTile, TileCache, sharedTileCache } from './tile-cache.js'

/** The log's tile files are missing or the wrong size for the committed tree: storage is corrupt. */
export class MissingTileError extends Error {
  override name = 'MissingTileError'
  /** @param path the tile file missing or of the wrong size, when one was read. */
  constructor(
    message: string,
    readonly path?: string,
  ) {
    super(message)
  }
}

/** {@link HashReader} over a log's hash tiles plus an overlay of not-yet-written hashes. */
export class TileHashes implements HashReader {
  /** Committed tree size (entries) whose tiles are on disk. */
  size: number
  /** Stored hashes computed but not yet in a written tile, by stored-hash index (one batch's, cleared after it). */
  readonly overlay = new Map<number, Hash>()
  private readonly owner: number

  /** @param cache where tiles are kept (default: the process's {@link sharedTileCache}). */
  constructor(
    private readonly files: LogFiles,
    size: number,
    private readonly cache: TileCache = sharedTileCache(),
  ) {
    this.size = size
    this.owner = cache.owner()
  }

  async readHashes(indexes: readonly number[]): Promise<Hash[]> {
    const out: Hash[] = []
    for (const i of indexes) {
      const h = this.overlay.get(i)
      if (h) {
        out.push(h)
        continue
      }
      // Stored hash i is node n of tree level L: row r = L mod 8 of a level-⌊L/8⌋ tile.
      const { level, n } = splitStoredHashIndex(i)
      const tileLevel = Math.floor(level / TILE_HEIGHT)
      const r = level - tileLevel * TILE_HEIGHT
      const perTile = TILE_WIDTH >> r // nodes of row r in one tile
      const index = Math.floor(n / perTile)
      const pos = n - index * perTile
      const need = (pos + 1) << r // tile width that holds it
      const tile = await this.tile(tileLevel, index, need, i)
      out.push(tile.hash(r, pos))
    }
    return out
  }

  /** Tile (level, index) at least `need` hashes wide, from the cache or its file at the committed width. */
  private async tile(level: number, index: number, need: number, storedIndex: number): Promise<CachedTile> {
    const cached = this.cache.get(this.owner, level, index)
    if (cached && cached.width >= need) return cached
    const width = tileWidth(level, index, this.size)
    if (width < need) throw new MissingTileError(`stored hash ${storedIndex} is beyond tree size ${this.size}`)
    const t: Tile = { level, index, width }
    const data = await this.files.read(tilePath(t))
    if (!data || data.length !== width * 32) throw new MissingTileError(`tile ${tilePath(t)} missing or truncated`, tilePath(t))
    return this.cache.put(this.owner, level, index, data)
  }

  /** Records a tile that was just written (committed), so the next reads need not read it back. */
  remember(t: Tile, data: Uint8Array): void {
    this.cache.put(this.owner, t.level, t.index, data)
  }
}
