/**
 * Reading a log's tree from its served files (c2sp.org/tlog-tiles), for the auditor and for
 * restore: one verifier over the tiles a log serves, whatever serves them (HTTP, a space's blocks).
 */
import { type Hash, type HashReader, tileHashReader, tilePath } from '../tlog/index.js'

/**
 * A {@link HashReader} over the hash tiles `fetchFile` serves for the tree of `size` entries with
 * root `rootHash`: every hash it returns is authenticated against that root (tile.ts
 * `tileHashReader`), so proofs built from it verify only if the served tiles are the tree's.
 * @param fetchFile reads a file by its tlog-tiles path; undefined when it is not served.
 * @param missing the error to throw for a tile that is not served (the caller's named error).
 */
export function servedTileReader(size: number, rootHash: Hash, fetchFile: (path: string) => Promise<Uint8Array | undefined>, missing: (path: string) => Error): HashReader {
  return tileHashReader(size, rootHash, {
    readTiles: (tiles) =>
      Promise.all(
        tiles.map(async (t) => {
          const d = await fetchFile(tilePath(t))
          if (!d) throw missing(tilePath(t))
          return d
        }),
      ),
  })
}
