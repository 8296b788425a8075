/**
 * Reading and checking a log's stored state without opening it for writing: the commit point
 * (`.state/tree`), the published checkpoint (`checkpoint`) and the hash tiles both commit to. Used by
 * `Log.open`, by the start-up check of every log (LogManager.checkAll) and by the read-only path
 * that serves published checkpoints, tiles and entries without opening a log.
 *
 * Every way the stored state can be unusable is a {@link CorruptLogError} naming the file.
 */
import {
  type Hash,
  type NoteVerifier,
  TILE_WIDTH,
  decodeBase64,
  encodeBase64,
  entryBundlePath,
  openNote,
  parseCheckpoint,
  parseEntryBundle,
  parseNote,
  treeHash,
  equalBytes,
  UnverifiedNoteError,
} from '../tlog/index.js'
import type { LogFiles } from './storage.js'
import { TileCache } from './tile-cache.js'
import { MissingTileError, TileHashes } from './tile-hashes.js'

/** Path of the commit point: `{ size, root }` JSON of the integrated tree. */
export const STATE_PATH = '.state/tree'
/** Path of the published (cosigned) checkpoint note. */
export const CHECKPOINT_PATH = 'checkpoint'

/**
 * A log's stored state is unusable: a file is missing, malformed, badly signed, or disagrees with
 * the tiles. `path` is the file (relative to the log's directory) found wrong.
 */
export class CorruptLogError extends Error {
  override name = 'CorruptLog'
  /** The damaged file, a path relative to the log's directory (e.g. `checkpoint`, `tile/0/000.p/3`). */
  readonly path: string
  constructor(message: string, path: string) {
    super(message)
    this.path = path
  }
}

/** The published checkpoint of a log, as stored. */
export interface StoredCheckpoint {
  /** Tree size, entries. */
  size: number
  rootHash: Hash
  /** The cosigned checkpoint note text. */
  note: string
}

/** The integrated tree (`.state/tree`). */
export interface StoredTree {
  /** Tree size, entries. */
  size: number
  root: Hash
}

/**
 * The bytes of `.state/tree` for `tree`: `{"size":N,"root":"<base64 of 32 bytes>"}` (JSON, UTF-8),
 * the engine-private commit point (docs/storage.md). Written by the log engine after every batch
 * and by `ucanlog restore`; read back only by {@link readStoredTree}.
 */
export function formatStoredTree(tree: StoredTree): Uint8Array {
  return Buffer.from(JSON.stringify({ size: tree.size, root: encodeBase64(tree.root) }))
}

/**
 * Reads `.state/tree`; undefined when absent (an empty log).
 * @throws CorruptLogError when it is not `{ "size": safe integer ≥ 0, "root": base64 of 32 bytes }`.
 */
export async function readStoredTree(files: Pick<LogFiles, 'read'>): Promise<StoredTree | undefined> {
  const bytes = await files.read(STATE_PATH)
  if (!bytes) return undefined
  try {
    const state = JSON.parse(Buffer.from(bytes).toString('utf8')) as { size?: unknown; root?: unknown }
    const size = state?.size
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new Error('size is not an integer ≥ 0')
    if (typeof state.root !== 'string') throw new Error('root is not a string')
    const root = decodeBase64(state.root)
    if (root.length !== 32) throw new Error('root is not 32 bytes')
    return { size, root }
  } catch (err) {
    throw new CorruptLogError(`${STATE_PATH} is malformed: ${(err as Error).message}`, STATE_PATH)
  }
}

/**
 * Reads the published checkpoint; undefined when none was published yet. With `verifier` (the
 * log's key) its signature is checked too, when it has one by that key (a checkpoint restored from
 * another instance is signed by that instance's key).
 * @throws CorruptLogError when it does not parse as a signed checkpoint note of `origin`, or its
 *   signature does not verify.
 */
export async function readStoredCheckpoint(files: Pick<LogFiles, 'read'>, o: { origin: string; verifier?: NoteVerifier }): Promise<StoredCheckpoint | undefined> {
  const bytes = await files.read(CHECKPOINT_PATH)
  if (!bytes) return undefined
  try {
    const note = Buffer.from(bytes).toString('utf8')
    let text: string
    try {
      text = o.verifier ? openNote(note, [o.verifier]).text : parseNote(note).text
    } catch (err) {
      // A log taken over from another instance (`ucanlog restore`) keeps the previous key's
      // checkpoint until its next one: no signature by this key is not damage; a bad one is.
      if (!(err instanceof UnverifiedNoteError)) throw err
      text = parseNote(note).text
    }
    const cp = parseCheckpoint(text)
    if (cp.origin !== o.origin) throw new Error(`origin is ${JSON.stringify(cp.origin.slice(0, 100))}`)
    return { size: cp.size, rootHash: cp.rootHash, note }
  } catch (err) {
    throw new CorruptLogError(`${CHECKPOINT_PATH} is not a valid checkpoint of this log: ${(err as Error).message}`, CHECKPOINT_PATH)
  }
}

/** What {@link checkStoredState} found: the state a log opens with. */
export interface CheckedState {
  size: number
  root: Hash
  published: StoredCheckpoint | undefined
  /** Entries of the right-edge partial entry bundle. */
  edge: Uint8Array[]
}

/**
 * Checks a log's whole stored state, reading only the files its checks need (the right edge of the
 * tiles, O(log size) files): the commit point parses and its root matches the tiles; the checkpoint
 * parses (and verifies, with `verifier`), is not past the commit point and its root matches the
 * tiles; the partial entry bundle has the committed width.
 * @throws CorruptLogError naming the first damaged file; other errors (I/O) as thrown by `files`.
 */
export async function checkStoredState(files: LogFiles, o: { origin: string; verifier?: NoteVerifier }): Promise<CheckedState> {
  // A private cache: the check reads each right-edge tile once, and must not crowd the shared one.
  const reader = new TileHashes(files, 0, new TileCache({ bytes: 1 << 20, upperBytes: 1 << 20 }))
  const rootOf = async (size: number, what: string, path: string): Promise<Hash> => {
    try {
      return await treeHash(size, reader)
    } catch (err) {
      if (err instanceof MissingTileError) throw new CorruptLogError(`${err.message} (${what})`, err.path ?? path)
      throw err
    }
  }
  const state = await readStoredTree(files)
  const size = state?.size ?? 0
  reader.size = size
  const root = await rootOf(size, `the tree of ${STATE_PATH}`, STATE_PATH)
  if (state && !equalBytes(root, state.root)) throw new CorruptLogError(`${STATE_PATH}: stored root does not match the tiles at size ${size}`, STATE_PATH)
  const published = await readStoredCheckpoint(files, o)
  if (published) {
    if (published.size > size) throw new CorruptLogError(`${CHECKPOINT_PATH}: size ${published.size} is past the committed tree size ${size}`, CHECKPOINT_PATH)
    if (!equalBytes(await rootOf(published.size, 'the checkpoint tree', CHECKPOINT_PATH), published.rootHash)) {
      throw new CorruptLogError(`${CHECKPOINT_PATH}: root hash does not match the tiles at size ${published.size}`, CHECKPOINT_PATH)
    }
  }
  const w = size % TILE_WIDTH
  const edge = w > 0 ? await readBundle(files, Math.floor(size / TILE_WIDTH), w) : []
  return { size, root, published, edge }
}

/**
 * Reads published entries [offset, offset+limit) of a tree of `size` entries (fewer at the end).
 * Stops before the entry that would take the entries' total length past `maxBytes` (default
 * unbounded), reading no further bundle: a read holds at most `maxBytes` of entries plus the one
 * bundle file it is reading (≤ 256 entries).
 * @param offset integer ≥ 0. @param limit entries, integer ≥ 0. @param maxBytes bytes, integer ≥ 0.
 * @throws CorruptLogError when an entry bundle the range needs is missing or malformed.
 */
export async function readEntries(files: Pick<LogFiles, 'read'>, size: number, offset: number, limit: number, maxBytes = Infinity): Promise<Uint8Array[]> {
  let taken = 0
  const entries: Uint8Array[] = []
  const end = Math.min(size, offset + limit)
  for (let i = offset; i < end; ) {
    const n = Math.floor(i / TILE_WIDTH)
    const bundle = await readBundle(files, n, Math.min(TILE_WIDTH, size - n * TILE_WIDTH))
    for (let j = i - n * TILE_WIDTH; j < bundle.length && i < end; j++, i++) {
      const entry = bundle[j]!
      if (taken + entry.length > maxBytes) return entries
      entries.push(entry)
      taken += entry.length
    }
  }
  return entries
}

/**
 * Entry bundle `n` of width `w` (c2sp.org/tlog-tiles `tile/entries/<N>[.p/<W>]`), parsed.
 * @param n bundle index ≥ 0. @param w entries, 1..256.
 * @throws CorruptLogError naming the bundle when it is missing, malformed, or does not hold exactly
 *   `w` entries (a short bundle must not pass for a readable one: readers index into it).
 */
async function readBundle(files: Pick<LogFiles, 'read'>, n: number, w: number): Promise<Uint8Array[]> {
  const path = entryBundlePath(n, w)
  const bytes = await files.read(path)
  if (!bytes) throw new CorruptLogError(`entry bundle ${path} missing`, path)
  let bundle: Uint8Array[]
  try {
    bundle = parseEntryBundle(bytes)
  } catch (err) {
    throw new CorruptLogError(`entry bundle ${path} is malformed: ${(err as Error).message}`, path)
  }
  if (bundle.length !== w) throw new CorruptLogError(`entry bundle ${path} has ${bundle.length} entries, want ${w}`, path)
  return bundle
}
