/**
 * Reading a log's tree from its served files (c2sp.org/tlog-tiles), for the auditor and for
 * restore: one verifier over the tiles a log serves, whatever serves them (HTTP, a space's blocks).
 */
import { type Hash, type HashReader, entryBundlePath, parseEntryBundle, tileHashReader, tilePath } from '../tlog/index.js'
import { MalformedFileError, MissingFileError } from './verify-errors.js'

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

/**
 * The entries of entry bundle `n` at width `w` (1..256: the bundle as a tree of `n`·256 + `w`
 * entries covers it, c2sp.org/tlog-tiles), read through `fetchFile` and parsed.
 * @returns exactly `w` entries.
 * @throws MissingFileError when it is not served; MalformedFileError when it does not parse or holds another number of entries.
 */
export async function readEntryBundle(fetchFile: (path: string) => Promise<Uint8Array | undefined>, n: number, w: number): Promise<Uint8Array[]> {
  const path = entryBundlePath(n, w)
  const bytes = await fetchFile(path)
  if (!bytes) throw new MissingFileError(`entry bundle ${path} is missing`)
  let entries: Uint8Array[]
  try {
    entries = parseEntryBundle(bytes)
  } catch (err) {
    throw new MalformedFileError(`${path}: ${(err as Error).message}`)
  }
  if (entries.length !== w) throw new MalformedFileError(`${path} has ${entries.length} entries, want ${w}`)
  return entries
}
