/**
 * A stored-hash reader over one log's hash tiles (c2sp.org/tlog-tiles), with an in-memory overlay
 * for the hashes of a batch that is being integrated and not yet written.
 *
 * Tiles only ever grow to the right, so the tile on disk for the committed tree size holds every
 * hash any older tree size needs: proofs for older checkpoints read the current tiles.
 */
import { type Hash, type HashReader, type Tile, hashFromTile, tileForIndex, tilePath, tileWidth } from '../tlog/index.js'
import type { LogFiles } from './storage.js'

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

/** Tiles kept in memory per log (8 KiB each): the right edge of every level plus recent proof reads. */
const MAX_CACHED_TILES = 64
/** Derived stored hashes kept per log (32 bytes each, plus map overhead). */
const MAX_MEMO_HASHES = 16_384

/** {@link HashReader} over a log's hash tiles plus an overlay of not-yet-written hashes. */
export class TileHashes implements HashReader {
  /** Committed tree size (entries) whose tiles are on disk. */
  size: number
  /** Stored hashes computed but not yet in a written tile, by stored-hash index. */
  readonly overlay = new Map<number, Hash>()
  /** Newest tile read or written per `level/index`; only right-edge tiles change, so this stays small. */
  private readonly cache = new Map<string, Uint8Array>()
  /**
   * Stored hashes already derived from tiles. A stored hash never changes once the tree has it, so
   * this needs no invalidation; it saves re-hashing a tile's inner levels for every proof of a batch.
   */
  private readonly memo = new Map<number, Hash>()

  constructor(
    private readonly files: LogFiles,
    size: number,
  ) {
    this.size = size
  }

  async readHashes(indexes: readonly number[]): Promise<Hash[]> {
    const out: Hash[] = []
    for (const i of indexes) {
      const h = this.overlay.get(i)
      if (h) {
        out.push(h)
        continue
      }
      const m = this.memo.get(i)
      if (m) {
        out.push(m)
        continue
      }
      const t = tileForIndex(i)
      const width = tileWidth(t.level, t.index, this.size)
      if (width < t.width) throw new MissingTileError(`stored hash ${i} is beyond tree size ${this.size}`)
      const full: Tile = { level: t.level, index: t.index, width }
      const hash = hashFromTile(full, await this.readTile(full), i)
      if (this.memo.size >= MAX_MEMO_HASHES) this.memo.delete(this.memo.keys().next().value!)
      this.memo.set(i, hash)
      out.push(hash)
    }
    return out
  }

  /** Reads a tile of exactly `t.width` hashes (cached). */
  async readTile(t: Tile): Promise<Uint8Array> {
    const key = `${t.level}/${t.index}`
    const cached = this.cache.get(key)
    if (cached && cached.length >= t.width * 32) return cached.subarray(0, t.width * 32)
    const data = await this.files.read(tilePath(t))
    if (!data || data.length !== t.width * 32) throw new MissingTileError(`tile ${tilePath(t)} missing or truncated`, tilePath(t))
    this.remember(t, data)
    return data
  }

  /** Records a tile that was just read or written; the least recently stored tiles are dropped. */
  remember(t: Tile, data: Uint8Array): void {
    const key = `${t.level}/${t.index}`
    this.cache.delete(key)
    this.cache.set(key, data)
    if (this.cache.size > MAX_CACHED_TILES) this.cache.delete(this.cache.keys().next().value!)
  }
}
