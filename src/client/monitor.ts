/**
 * The monitor's checks on one log (`ucanlog monitor`, issue 13 item 4), pure of HTTP and of the
 * process: the log's public files come through an injected {@link LogFileFetcher}.
 *
 * 1. {@link checkNewCheckpoint}: the served checkpoint's log signature, origin and cosignatures per
 *    the pinned policy (verify-checkpoint.ts); then, against every checkpoint seen before (pinned in
 *    the trust store, the monitor's cursor) and each second source's (`--compare`): equal sizes
 *    need equal roots, and the smaller tree must be a prefix of the larger (RFC 6962 §2.1.2,
 *    consistency proof built from the larger tree's public tiles, every hash authenticated against
 *    its signed root). A contradiction is a {@link LogMisbehavedError} carrying both checkpoints.
 * 2. {@link readNewEntries}: every entry past the cursor, from the entry bundles, re-hashed (RFC 6962
 *    leaf hash) and compared with its leaf in the level-0 tiles, those tiles authenticated against
 *    the verified checkpoint's root (tiles.ts `servedTileReader`); handed over one bundle (≤ 256
 *    entries) at a time.
 */
import {
  type Hash,
  type HashReader,
  type Policy,
  InvalidProofError,
  TILE_WIDTH,
  checkTree,
  encodeBase64,
  entryBundlePath,
  equalBytes,
  leafHash,
  proveTree,
  storedHashIndex,
} from '../tlog/index.js'
import { LeafHashMismatchError, TileMismatchError } from './audit.js'
import { type CheckpointEvidence, LogMisbehavedError } from './monitor-errors.js'
import { readEntryBundle, servedTileReader } from './tiles.js'
import type { SeenCheckpoint, TrustAnchors } from './trust-store.js'
import type { LogFileFetcher } from './verify-append.js'
import { type VerifiedCheckpoint, verifyCheckpointNote } from './verify-checkpoint.js'
import { MissingFileError } from './verify-errors.js'

/** One entry as the monitor prints it (a JSON line): the log, its index (0-based), its RFC 6962 leaf hash (base64), its length in bytes and its bytes (base64). */
export interface MonitorEntry {
  space: string
  index: number
  leafHash: string
  size: number
  data: string
}

/** A checkpoint seen before, and where (the evidence's `source`: e.g. `pinned <file>`). */
export interface SeenCheckpointAt extends SeenCheckpoint {
  source: string
}

/** A second source of the same log (`--compare`): a mirror, a gateway copy, another replica. */
export interface CompareSource {
  /** Its URL, for messages and evidence. */
  source: string
  fetchFile: LogFileFetcher
}

/** What {@link checkNewCheckpoint} checks the served checkpoint against. */
export interface CheckpointCheck {
  /** The log (space DID). */
  space: string
  /** Pinned origin, log vkey and witness policy text (trust-store.ts). */
  anchors: Pick<TrustAnchors, 'origin' | 'logVkey'>
  /** The pinned witness policy, parsed. */
  policy: Policy
  /** The followed source's URL of its checkpoint, for messages and evidence. */
  source: string
  /** The followed source's files. */
  fetchFile: LogFileFetcher
  /** Checkpoints seen before (the trust store's last, the cursor's): the new one must extend each. */
  seen: readonly SeenCheckpointAt[]
  /** Second sources: each one's checkpoint, when it verifies, must agree with the new one. */
  compare?: readonly CompareSource[]
  /** The verifier's clock, Unix seconds. */
  now: number
  /** Told of a second source that cannot be used this time (unreachable, unsigned, tiles not matching its root): no evidence either way. */
  warn?: (message: string) => void
}

/**
 * Fetches and verifies the followed source's checkpoint, then checks it against every checkpoint
 * seen before and every second source's (see the module comment).
 * @returns the verified checkpoint, or undefined when the source publishes none (404).
 * @throws LogMisbehavedError (exit 5: LogForked, SplitView, LogRolledBack) with both checkpoints;
 *   the checks of verifyCheckpointNote (LogSignatureInvalid, OriginMismatch, CosignatureInvalid,
 *   WitnessPolicyNotMet, MalformedFile); TileMismatch when the source's tiles do not authenticate
 *   against its own signed root; MissingFile (all exit 3); the fetcher's errors (unreachable, HTTP).
 */
export async function checkNewCheckpoint(c: CheckpointCheck): Promise<VerifiedCheckpoint | undefined> {
  const bytes = await c.fetchFile('checkpoint')
  if (!bytes) return undefined
  const verify = (note: string) => verifyCheckpointNote(note, { origin: c.anchors.origin, logVkey: c.anchors.logVkey, policy: c.policy, now: c.now })
  const v = verify(Buffer.from(bytes).toString('utf8'))
  const current: Side = { ev: evidence(c.source, v), rootHash: v.checkpoint.rootHash, reader: reader(v, c.fetchFile) }
  for (const s of c.seen) {
    if (s.size > current.ev.size) {
      throw new LogMisbehavedError('LogRolledBack', c.space, `the log rolled back: ${c.source} now publishes size ${current.ev.size}, but size ${s.size} was seen (${s.source})`, [
        { source: s.source, size: s.size, rootHash: encodeBase64(s.rootHash), note: s.note },
        current.ev,
      ])
    }
    await agree(c.space, { ev: { source: s.source, size: s.size, rootHash: encodeBase64(s.rootHash), note: s.note }, rootHash: s.rootHash }, current, (msg) => new TileMismatchError(msg))
  }
  for (const other of c.compare ?? []) {
    let o: VerifiedCheckpoint
    try {
      const b = await other.fetchFile('checkpoint')
      if (!b) continue
      o = verify(Buffer.from(b).toString('utf8'))
    } catch (err) {
      c.warn?.(`--compare ${other.source}: ${(err as Error).message}; not compared this time`)
      continue
    }
    const side: Side = { ev: evidence(other.source, o), rootHash: o.checkpoint.rootHash, reader: reader(o, other.fetchFile) }
    // A larger second source whose tiles cannot be read or do not match its own signed root proves
    // nothing either way; the followed source's tiles must match its root.
    try {
      await agree(c.space, current, side, (msg) => new TileMismatchError(msg))
    } catch (err) {
      if (err instanceof LogMisbehavedError || side.ev.size <= current.ev.size) throw err
      c.warn?.(`--compare ${other.source}: ${(err as Error).message}; not compared this time`)
    }
  }
  return v
}

/** What {@link readNewEntries} reads: the log's files and the verified checkpoint they must match. */
export interface EntriesRead {
  space: string
  fetchFile: LogFileFetcher
  /** Tree size (entries) and root of a verified checkpoint. */
  checkpoint: { size: number; rootHash: Hash }
  /** The first index to read (the cursor), 0 ≤ from. Nothing is read when from ≥ size. */
  from: number
  /**
   * Called with each bundle's new entries in index order (1..256 of them) and the next cursor
   * (their last index + 1); the next bundle is read only once it resolves. Write the cursor there,
   * after the entries are delivered.
   */
  emit(entries: MonitorEntry[], next: number): Promise<void>
  /** Checked before each bundle: when it answers true, reading stops (the cursor stays at what was emitted). */
  stopped?: () => boolean
}

/**
 * Reads, verifies and emits the entries `from`..size−1: each entry bundle (c2sp.org/tlog-tiles) of
 * the checkpoint's tree that holds new entries, each entry re-hashed and compared with its leaf
 * hash, read from the level-0 tiles authenticated against the checkpoint's root. Memory: one bundle
 * (≤ 256 entries of ≤ 64 KiB) at a time.
 * @returns the cursor after the last entry emitted.
 * @throws MissingFile, MalformedFile, LeafHashMismatch, TileMismatch (exit 3); the fetcher's errors.
 */
export async function readNewEntries(r: EntriesRead): Promise<number> {
  const { size } = r.checkpoint
  const tiles = servedTileReader(size, r.checkpoint.rootHash, r.fetchFile, (path) => new MissingFileError(`tile ${path} is missing`))
  let next = r.from
  if (r.from >= size) return next
  for (let n = Math.floor(r.from / TILE_WIDTH); n * TILE_WIDTH < size; n++) {
    if (r.stopped?.()) break
    const start = n * TILE_WIDTH
    const w = Math.min(TILE_WIDTH, size - start)
    const entries = await readEntryBundle(r.fetchFile, n, w)
    const lo = Math.max(r.from, start)
    const indexes = Array.from({ length: start + w - lo }, (_, k) => lo + k)
    const leaves = await authenticated(() => tiles.readHashes(indexes.map((i) => storedHashIndex(0, i))), (msg) => new TileMismatchError(`the level-0 tiles of entries ${lo}..${start + w - 1}: ${msg}`))
    const out = indexes.map((i, k): MonitorEntry => {
      const entry = entries[i - start]!
      const lh = leafHash(entry)
      if (!equalBytes(lh, leaves[k]!)) throw new LeafHashMismatchError(`entry ${i} in ${entryBundlePath(n, w)} does not hash to its leaf in the level-0 tile`)
      return { space: r.space, index: i, leafHash: encodeBase64(lh), size: entry.length, data: encodeBase64(entry) }
    })
    next = start + w
    await r.emit(out, next)
  }
  return next
}

/** One side of a comparison: its evidence, its root and, for a served checkpoint, a reader of its tiles. */
interface Side {
  ev: CheckpointEvidence
  rootHash: Hash
  reader?: HashReader
}

function evidence(source: string, v: VerifiedCheckpoint): CheckpointEvidence {
  return { source, size: v.checkpoint.size, rootHash: encodeBase64(v.checkpoint.rootHash), note: v.note }
}

function reader(v: VerifiedCheckpoint, fetchFile: LogFileFetcher): HashReader {
  return servedTileReader(v.checkpoint.size, v.checkpoint.rootHash, fetchFile, (path) => new MissingFileError(`tile ${path} is missing`))
}

/**
 * Checks that two verified checkpoints of one log agree: equal sizes, equal roots (else SplitView);
 * different sizes, the smaller a prefix of the larger, proved from the larger's tiles (else
 * LogForked). `badTiles` makes the error for a larger side whose tiles do not authenticate against
 * its own root (no evidence about the log: the tiles, not the checkpoints, are wrong).
 */
async function agree(space: string, a: Side, b: Side, badTiles: (message: string) => Error): Promise<void> {
  if (a.ev.size === b.ev.size) {
    if (!equalBytes(a.rootHash, b.rootHash)) {
      throw new LogMisbehavedError('SplitView', space, `two checkpoints of size ${a.ev.size} with different roots: ${a.ev.source} and ${b.ev.source}`, [a.ev, b.ev])
    }
    return
  }
  const [small, large] = a.ev.size < b.ev.size ? [a, b] : [b, a]
  if (small.ev.size === 0 || !large.reader) return
  const proof = await authenticated(() => proveTree(large.ev.size, small.ev.size, large.reader!), (msg) => badTiles(`the tiles of ${large.ev.source} (size ${large.ev.size}): ${msg}`))
  try {
    checkTree(proof, large.ev.size, large.rootHash, small.ev.size, small.rootHash)
  } catch {
    throw new LogMisbehavedError(
      'LogForked',
      space,
      `the log forked: the checkpoint of size ${large.ev.size} (${large.ev.source}) does not extend the one of size ${small.ev.size} (${small.ev.source})`,
      [a.ev, b.ev],
    )
  }
}

/** Runs a read of authenticated tile hashes, turning a tile that does not match the signed root into `bad`'s error. */
async function authenticated<T>(read: () => Promise<T>, bad: (message: string) => Error): Promise<T> {
  try {
    return await read()
  } catch (err) {
    throw err instanceof InvalidProofError ? bad(err.message) : err
  }
}
