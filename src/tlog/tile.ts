/**
 * c2sp.org/tlog-tiles Merkle tiles: paths, contents and authenticated reading.
 *
 * A tile is the bottom row of a height-8 subtree: level-L tile N holds up to 256 consecutive stored
 * hashes of tree level 8·L, positions [256·N, 256·N + width), concatenated with no framing
 * (width·32 bytes). Tiles are served at `tile/<L>/<N>` (full, width 256) or `tile/<L>/<N>.p/<W>`
 * (partial, 1 ≤ W ≤ 255), with N written in 3-digit groups, all but the last prefixed with `x`
 * (1234067 → `x001/x234/067`). Entry bundles use the same index encoding under `tile/entries/`.
 * Unlike golang.org/x/mod/sumdb/tlog, paths carry no tile height and the data level is `entries`.
 */
import {
  HASH_SIZE,
  type Hash,
  type HashReader,
  equalBytes,
  nodeHash,
  splitStoredHashIndex,
  storedHashIndex,
  subTreeIndex,
} from './hash.js'
import { InvalidProofError } from './proof.js'

/** Tile height in tree levels (c2sp.org/tlog-tiles): one tile spans 8 levels. */
export const TILE_HEIGHT = 8

/** Hashes in a full tile, and entries in a full entry bundle: 2^TILE_HEIGHT = 256. */
export const TILE_WIDTH = 256

/**
 * A Merkle hash tile (c2sp.org/tlog-tiles): `level` 0..63 (tree level 8·level), `index` ≥ 0 within
 * the level, `width` 1..256 hashes (256 = full tile, fewer = partial tile).
 */
export interface Tile {
  level: number
  index: number
  width: number
}

/** A string that is not a canonical c2sp.org/tlog-tiles tile or entry-bundle path. */
export class MalformedTilePathError extends Error {
  override name = 'MalformedTilePathError'
}

const MAX_LEVEL = 63

function checkTile(t: Tile): void {
  if (!Number.isInteger(t.level) || t.level < 0 || t.level > MAX_LEVEL) throw new RangeError(`tile level must be an integer in 0..${MAX_LEVEL}, got ${t.level}`)
  if (!Number.isSafeInteger(t.index) || t.index < 0) throw new RangeError(`tile index must be a non-negative safe integer, got ${t.index}`)
  checkWidth(t.width)
}

function checkWidth(width: number): void {
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) throw new RangeError(`tile width must be an integer in 1..${TILE_WIDTH}, got ${width}`)
}

function checkSize(what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${v}`)
}

/** `N[.p/W]`: N in 3-digit groups, `x` before all but the last; `.p/W` only when W < 256. */
function formatIndex(index: number, width: number): string {
  let n = index
  let s = String(n % 1000).padStart(3, '0')
  n = Math.floor(n / 1000)
  while (n > 0) {
    s = `x${String(n % 1000).padStart(3, '0')}/${s}`
    n = Math.floor(n / 1000)
  }
  return width === TILE_WIDTH ? s : `${s}.p/${width}`
}

/**
 * The c2sp.org/tlog-tiles path of a hash tile, relative to the log prefix:
 * `tile/<L>/<N>` or `tile/<L>/<N>.p/<W>`, e.g. `{level 0, index 1234067, width 5}` →
 * `tile/0/x001/x234/067.p/5`.
 * @throws RangeError on an invalid tile (level 0..63, index ≥ 0, width 1..256).
 */
export function tilePath(t: Tile): string {
  checkTile(t)
  return `tile/${t.level}/${formatIndex(t.index, t.width)}`
}

/**
 * The c2sp.org/tlog-tiles path of entry bundle `index` (entries [256·index, 256·index + width)),
 * relative to the log prefix: `tile/entries/<N>[.p/<W>]`, e.g. (0, 7) → `tile/entries/000.p/7`.
 * @param index bundle index ≥ 0.
 * @param width entries in the bundle, 1..256 (256 = full bundle, no `.p` suffix).
 * @throws RangeError on an invalid index or width.
 */
export function entryBundlePath(index: number, width: number): string {
  checkSize('bundle index', index)
  checkWidth(width)
  return `tile/entries/${formatIndex(index, width)}`
}

/** Longer than any canonical path (index < 2^53 has 6 groups). */
const MAX_PATH_LENGTH = 64
const PATH_RE = /^tile\/(entries|0|[1-9][0-9]?)\/((?:x[0-9]{3}\/)*[0-9]{3})(?:\.p\/([1-9][0-9]{0,2}))?$/

/**
 * Parses a c2sp.org/tlog-tiles path relative to the log prefix (no leading `/`), accepting only the
 * canonical form that {@link tilePath} / {@link entryBundlePath} produce: level 0..63 without leading
 * zeros; every index group exactly 3 digits, `x` on all but the last, no leading all-zero groups;
 * `.p/<W>` only with 1 ≤ W ≤ 255 and no leading zeros; nothing before or after.
 * @returns a hash tile, or an entry bundle's index and width (entries).
 * @throws MalformedTilePathError on anything else.
 */
export function parseTilePath(
  path: string,
): { kind: 'tile'; tile: Tile } | { kind: 'entries'; index: number; width: number } {
  const m = path.length <= MAX_PATH_LENGTH ? PATH_RE.exec(path) : null
  if (m === null) throw new MalformedTilePathError(`malformed tile path ${JSON.stringify(path.slice(0, MAX_PATH_LENGTH))}`)
  const [, levelStr, indexStr, widthStr] = m
  let index = 0
  for (const group of indexStr!.split('/')) index = index * 1000 + Number(group.replace('x', ''))
  const width = widthStr === undefined ? TILE_WIDTH : Number(widthStr)
  const level = levelStr === 'entries' ? -1 : Number(levelStr)
  if (!Number.isSafeInteger(index) || (widthStr !== undefined && width >= TILE_WIDTH) || level > MAX_LEVEL) {
    throw new MalformedTilePathError(`malformed tile path ${JSON.stringify(path)}`)
  }
  const result =
    level === -1
      ? { kind: 'entries' as const, index, width }
      : { kind: 'tile' as const, tile: { level, index, width } }
  const canonical = result.kind === 'entries' ? entryBundlePath(index, width) : tilePath(result.tile)
  if (canonical !== path) throw new MalformedTilePathError(`non-canonical tile path ${JSON.stringify(path)}`)
  return result
}

/**
 * The smallest tile holding stored hash `storedIndex`, and the byte range [start, end) of that
 * tile's data whose tile-internal subtree hashes to it.
 */
function locate(storedIndex: number): { tile: Tile; start: number; end: number } {
  const { level, n } = splitStoredHashIndex(storedIndex)
  const tileLevel = Math.floor(level / TILE_HEIGHT)
  const pow = 2 ** (level - tileLevel * TILE_HEIGHT) // tile-row hashes under one node of this level
  const index = Math.floor((n * pow) / TILE_WIDTH)
  const within = n - (index * TILE_WIDTH) / pow // position of the node among this level's nodes in the tile
  const width = (within + 1) * pow
  return { tile: { level: tileLevel, index, width }, start: within * pow * HASH_SIZE, end: width * HASH_SIZE }
}

/**
 * The tile of least width that holds stored hash `storedIndex` (x/mod `TileForIndex` with height 8):
 * either the hash itself sits in the tile's row, or it is the root of a subtree of that row.
 * @throws RangeError unless `storedIndex` is a non-negative safe integer.
 */
export function tileForIndex(storedIndex: number): Tile {
  return locate(storedIndex).tile
}

/**
 * Width (hashes, 0..256) of the level-`level` tile `index` that a tree of `size` entries has; 0
 * when the tree has no complete hash in that tile (c2sp.org/tlog-tiles: such tiles are never
 * written). At level 0 it is also the width of entry bundle `index` (entries).
 * @param level ≥ 0. @param index ≥ 0. @param size entries ≥ 0.
 */
export function tileWidth(level: number, index: number, size: number): number {
  const complete = Math.floor(size / TILE_WIDTH ** level)
  return Math.max(0, Math.min(TILE_WIDTH, complete - index * TILE_WIDTH))
}

/** MTH of the 2^k hashes concatenated in `data` (the tile-internal subtree over them). */
function tileHash(data: Uint8Array): Hash {
  let level: Hash[] = []
  for (let i = 0; i < data.length; i += HASH_SIZE) level.push(data.subarray(i, i + HASH_SIZE))
  while (level.length > 1) {
    const up: Hash[] = []
    for (let i = 0; i < level.length; i += 2) up.push(nodeHash(level[i]!, level[i + 1]!))
    level = up
  }
  return level[0]!.slice()
}

/**
 * Stored hash `storedIndex` read out of tile `t`'s data (x/mod `HashFromTile`): copied from the tile
 * row, or recomputed as the subtree hash over the row hashes under it. `t` must be
 * `tileForIndex(storedIndex)` or a wider tile with the same level and index.
 * @param data the tile's contents, at least `t.width`·32 bytes.
 * @returns a 32-byte hash.
 * @throws RangeError on an invalid tile, data shorter than the tile, or an index not in `t`.
 */
export function hashFromTile(t: Tile, data: Uint8Array, storedIndex: number): Hash {
  checkTile(t)
  if (data.length < t.width * HASH_SIZE) throw new RangeError(`tile data is ${data.length} bytes, want at least ${t.width * HASH_SIZE}`)
  const { tile, start, end } = locate(storedIndex)
  if (t.level !== tile.level || t.index !== tile.index || t.width < tile.width) {
    throw new RangeError(`stored hash ${storedIndex} is in ${tilePath(tile)}, not ${tilePath(t)}`)
  }
  return tileHash(data.subarray(start, end))
}

/**
 * The hash tiles a log must write when its tree grows from `oldSize` to `newSize` entries, level by
 * level, in index order: every full tile completed by the growth, and the new partial tile at each
 * level whose contents changed (c2sp.org/tlog-tiles: one partial tile per published size, width
 * ⌊newSize/256^L⌋ mod 256). Unlike x/mod `NewTiles`, partial tiles of intermediate widths that no
 * checkpoint covers are not listed. Empty for oldSize = newSize.
 * @param oldSize 0 ≤ oldSize ≤ newSize, entries.
 * @param newSize entries.
 * @throws RangeError on invalid sizes.
 */
export function newTiles(oldSize: number, newSize: number): Tile[] {
  checkSize('oldSize', oldSize)
  checkSize('newSize', newSize)
  if (oldSize > newSize) throw new RangeError(`oldSize ${oldSize} > newSize ${newSize}`)
  const tiles: Tile[] = []
  for (let level = 0; level <= MAX_LEVEL; level++) {
    const span = TILE_WIDTH ** level
    const oldN = Math.floor(oldSize / span) // complete nodes at tree level 8·level
    const newN = Math.floor(newSize / span)
    if (newN === 0) break
    if (newN === oldN) continue
    const lastFull = Math.floor(newN / TILE_WIDTH)
    for (let index = Math.floor(oldN / TILE_WIDTH); index < lastFull; index++) tiles.push({ level, index, width: TILE_WIDTH })
    const width = newN - lastFull * TILE_WIDTH
    if (width > 0) tiles.push({ level, index: lastFull, width })
  }
  return tiles
}

/**
 * The contents of tile `t` (width·32 bytes) assembled from stored hashes read from `r` in one call
 * (x/mod `ReadTileData`), for a log writing its tiles.
 * @throws RangeError on an invalid tile.
 */
export async function readTileData(t: Tile, r: HashReader): Promise<Uint8Array> {
  checkTile(t)
  const indexes = new Array<number>(t.width)
  for (let i = 0; i < t.width; i++) indexes[i] = storedHashIndex(t.level * TILE_HEIGHT, t.index * TILE_WIDTH + i)
  const hashes = await r.readHashes(indexes)
  if (!Array.isArray(hashes) || hashes.length !== indexes.length) throw new Error(`tlog: readHashes(${indexes.length} indexes) returned ${hashes?.length} hashes`)
  const data = new Uint8Array(t.width * HASH_SIZE)
  hashes.forEach((h, i) => {
    if (h.length !== HASH_SIZE) throw new Error('tlog: readHashes returned a hash that is not 32 bytes')
    data.set(h, i * HASH_SIZE)
  })
  return data
}

/**
 * A source of tile contents, typically a tile server or a cache (c2sp.org/tlog-tiles).
 *
 * Contract: `readTiles` resolves to one byte array per requested tile, in order, or rejects. The
 * data need not be trusted — {@link tileHashReader} authenticates it — but should be `width`·32
 * bytes. A reader may answer a missing partial tile with the first width·32 bytes of the full tile at
 * the same level and index (as x/mod's sumdb client does, and as c2sp.org/tlog-tiles allows clients
 * to fall back to the full tile).
 */
export interface TileReader {
  readTiles(tiles: readonly Tile[]): Promise<Uint8Array[]>
}

/**
 * The tile at `k` tile levels above `t` that holds t's ancestors, at the widest width the tree of
 * `size` entries has, or null if that tile would be empty.
 */
function tileParent(t: Tile, k: number, size: number): Tile | null {
  const level = t.level + k
  const index = Math.floor(t.index / TILE_WIDTH ** k)
  const available = Math.floor(size / TILE_WIDTH ** level) // complete nodes at tree level 8·level
  const first = index * TILE_WIDTH
  if (first >= available) return null
  return { level, index, width: Math.min(TILE_WIDTH, available - first) }
}

function key(t: Tile): string {
  return `${t.level}/${t.index}/${t.width}`
}


/**
 * A {@link HashReader} over the tree of `size` entries with root hash `root`, served from tiles read
 * through `r` (x/mod `TileHashReader`). Each `readHashes` call fetches, in one `readTiles` call, the
 * right-edge tiles that determine the root plus the tiles holding the requested hashes and their
 * ancestors; recomputes the root from the right-edge tiles and checks every other tile against the
 * hash its parent tile holds for it — all before returning any hash. So every hash it returns is
 * proven to be in the tree with that root. Nothing is cached between calls.
 * @param size tree size in entries, ≥ 0.
 * @param root the tree's 32-byte root hash (from a verified checkpoint).
 * @throws RangeError (at construction) on an invalid size or root; (from readHashes) on a stored
 *   hash index not in the tree (0 ≤ index < storedHashCount(size)).
 * @throws InvalidProofError (from readHashes) if any tile read has the wrong length or does not
 *   authenticate against `root`.
 */
export function tileHashReader(size: number, root: Hash, r: TileReader): HashReader {
  checkSize('size', size)
  if (!(root instanceof Uint8Array) || root.length !== HASH_SIZE) throw new RangeError(`root must be a ${HASH_SIZE}-byte hash`)
  const rootHash = root.slice()
  const limit = storedHashIndex(0, size) // = storedHashCount(size)
  return {
    async readHashes(indexes: readonly number[]): Promise<Hash[]> {
      for (const x of indexes) {
        if (!Number.isSafeInteger(x) || x < 0 || x >= limit) throw new RangeError(`stored hash index ${x} not in tree of size ${size}`)
      }
      if (indexes.length === 0) return []

      const tiles: Tile[] = []
      const order = new Map<string, number>()
      const add = (t: Tile): number => {
        order.set(key(t), tiles.length)
        return tiles.push(t) - 1
      }

      // Tiles holding the right-edge subtree roots that make up the root hash.
      const edge = subTreeIndex(0, size, [])
      const edgeTile = edge.map((x) => {
        const t = tileParent(tileForIndex(x), 0, size)!
        return order.get(key(t)) ?? add(t)
      })
      const edgeTiles = tiles.length

      // Tiles holding the requested hashes, each preceded by the ancestors needed to authenticate it.
      const indexTile = indexes.map((x) => {
        const t = tileForIndex(x)
        let k = 0
        let found: number | undefined
        for (; ; k++) {
          const p = tileParent(t, k, size)
          if (p === null || k > MAX_LEVEL) throw new Error(`tlog: bad math in tileHashReader (${size}, ${x})`)
          found = order.get(key(p))
          if (found !== undefined) break
        }
        for (k--; k >= 0; k--) {
          const p = tileParent(t, k, size)!
          // Only a full tile has a hash in the tile above it.
          if (p.width !== TILE_WIDTH) throw new Error(`tlog: bad math in tileHashReader (${size}, ${x})`)
          found = add(p)
        }
        return found
      })

      const data = await r.readTiles(tiles)
      if (!Array.isArray(data) || data.length !== tiles.length) {
        throw new Error(`tlog: readTiles(${tiles.length} tiles) returned ${Array.isArray(data) ? data.length : typeof data} results`)
      }
      tiles.forEach((t, i) => {
        const d = data[i]
        if (!(d instanceof Uint8Array) || d.length !== t.width * HASH_SIZE) {
          throw new InvalidProofError(`${tilePath(t)} is ${d instanceof Uint8Array ? d.length : typeof d} bytes, want ${t.width * HASH_SIZE}`)
        }
      })

      // The right-edge tiles must reproduce the root…
      let h = hashFromTile(tiles[edgeTile.at(-1)!]!, data[edgeTile.at(-1)!]!, edge.at(-1)!)
      for (let i = edge.length - 2; i >= 0; i--) h = nodeHash(hashFromTile(tiles[edgeTile[i]!]!, data[edgeTile[i]!]!, edge[i]!), h)
      if (!equalBytes(h, rootHash)) throw new InvalidProofError(`tiles for tree size ${size} do not match the root hash`)

      // …and every other tile must match the hash its (earlier, already authenticated) parent holds.
      for (let i = edgeTiles; i < tiles.length; i++) {
        const t = tiles[i]!
        const p = tileParent(t, 1, size)!
        const j = order.get(key(p))
        if (j === undefined || j >= i) throw new Error(`tlog: bad math in tileHashReader: lost parent of ${tilePath(t)}`)
        const want = hashFromTile(p, data[j]!, storedHashIndex(p.level * TILE_HEIGHT, t.index))
        if (!equalBytes(tileHash(data[i]!), want)) throw new InvalidProofError(`${tilePath(t)} does not match its parent tile`)
      }

      return indexes.map((x, i) => hashFromTile(tiles[indexTile[i]!]!, data[indexTile[i]!]!, x))
    },
  }
}
