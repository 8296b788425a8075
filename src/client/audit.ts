/**
 * The auditor: verifies a log from its public files alone, as any auditor could, with no account
 * (`ucanlog audit` runs it over HTTP, `ucanlog restore` over a space's blocks).
 *
 * 1. the checkpoint's log signature (c2sp.org/signed-note, the log's Ed25519 vkey) and origin;
 * 2. the witness cosignatures the policy requires (c2sp.org/tlog-cosignature, c2sp.org/tlog-policy);
 * 3. every entry bundle re-hashed (RFC 6962 leaf hashes) against the level-0 tiles;
 * 4. the whole tree recomputed from those leaves: the root equals the checkpoint's, and every
 *    higher-level tile equals the recomputed one (c2sp.org/tlog-tiles);
 * 5. inclusion proofs (RFC 6962 §2.1.1) built from the served tiles, checked against the root;
 * 6. consistency (RFC 6962 §2.1.2) with the checkpoint this auditor saw last time, stored locally —
 *    a log that rolled back or forked fails here.
 */
import {
  type Hash,
  type Policy,
  TILE_WIDTH,
  MemoryHashStore,
  checkRecord,
  checkTree,
  encodeBase64,
  leafHash,
  newTiles,
  proveRecord,
  proveTree,
  readTileData,
  tilePath,
  treeHash,
  equalBytes,
} from '../tlog/index.js'
import { readEntryBundle, servedTileReader } from './tiles.js'
import { verifyCheckpointNote } from './verify-checkpoint.js'
import {
  ForkError,
  InclusionProofError,
  MalformedFileError,
  MissingFileError,
  RollbackError,
  VERIFICATION_FAILED_EXIT_CODE,
  VerificationError,
} from './verify-errors.js'

export {
  CosignatureInvalidError,
  ForkError,
  InclusionProofError,
  LogKeyChangedError,
  LogSignatureError,
  MalformedFileError,
  MissingFileError,
  OriginMismatchError,
  RollbackError,
  VerificationError,
  WitnessPolicyError,
} from './verify-errors.js'

/** Exit status of `ucanlog audit` when the log fails a check (the CLI contract's 3 = verification failed; 1 = usage, 2 = refused, 4 = unreachable). */
export const AUDIT_FAILED_EXIT_CODE = VERIFICATION_FAILED_EXIT_CODE

/**
 * An audit check that failed: the shared {@link VerificationError} (verify-errors.ts), under the
 * name the auditor's callers know. Each check throws its own subclass, whose `name` the CLI prints;
 * `ucanlog audit` exits with {@link AUDIT_FAILED_EXIT_CODE} for all of them.
 */
export const AuditError = VerificationError
/** An audit check that failed (see {@link AuditError}). */
export type AuditError = VerificationError

/** An entry does not hash (RFC 6962 leaf hash) to its leaf in the level-0 tile: the bundle or the tile was altered. */
export class LeafHashMismatchError extends VerificationError {
  override name = 'LeafHashMismatch'
}
/** The tree recomputed from the entries has another root than the signed checkpoint's. */
export class RootMismatchError extends VerificationError {
  override name = 'RootMismatch'
}
/** A served higher-level tile differs from the one recomputed from the entries. */
export class TileMismatchError extends VerificationError {
  override name = 'TileMismatch'
}

/** What {@link auditLog} checks a log against: its files, expected origin, pinned log key, witness policy and the checkpoint seen last time. */
export interface AuditInput {
  /** Fetches a file of the log by its tlog-tiles path (`checkpoint`, `tile/0/000`, …); undefined = 404. */
  fetchFile(path: string): Promise<Uint8Array | undefined>
  /** Expected origin (c2sp.org/tlog-checkpoint). */
  origin: string
  /** The log's vkey (type 0x01, name = origin). */
  logVkey: string
  policy: Policy
  /** The checkpoint seen last time, if any. */
  previous?: { size: number; rootHash: Hash }
  /** Maximum inclusion proofs to check (all entries when the log is smaller). Default 1000. */
  inclusionSample?: number
  /** Unix seconds, for rejecting cosignatures from the future. */
  now?: number
  onProgress?: (done: number, total: number) => void
}

/** What {@link auditLog} verified: tree size (entries), root hash (32 bytes), the checkpoint note, the verified cosignatures (timestamps in Unix seconds) and counts of what was checked. */
export interface AuditReport {
  origin: string
  size: number
  rootHash: Hash
  note: string
  /** Verified witness cosignatures required or allowed by the policy. */
  cosignatures: { name: string; keyName: string; timestamp: number }[]
  entriesChecked: number
  tilesChecked: number
  inclusionProofsChecked: number
  consistentWith?: number
}

/**
 * Runs every check over the log's files.
 * @throws AuditError (a subclass per check: MissingFile, MalformedFile, LogSignatureInvalid, OriginMismatch,
 *   CosignatureInvalid, WitnessPolicyNotMet, LeafHashMismatch, RootMismatch, TileMismatch,
 *   InclusionProofInvalid, LogRolledBack, LogForked) naming the first check that failed.
 */
export async function auditLog(a: AuditInput): Promise<AuditReport> {
  const cpBytes = await a.fetchFile('checkpoint')
  if (!cpBytes) throw new MissingFileError('the log has no published checkpoint')
  const note = Buffer.from(cpBytes).toString('utf8')
  const { checkpoint: cp, cosignatures } = verifyCheckpointNote(note, { origin: a.origin, logVkey: a.logVkey, policy: a.policy, now: a.now ?? Math.floor(Date.now() / 1000) })

  // Re-hash every entry bundle against the level-0 tiles, collecting the leaves.
  const store = new MemoryHashStore()
  const bundles = Math.ceil(cp.size / TILE_WIDTH)
  let tilesChecked = 0
  const leaves: Hash[] = []
  for (let n = 0; n < bundles; n++) {
    const w = Math.min(TILE_WIDTH, cp.size - n * TILE_WIDTH)
    const tPath = tilePath({ level: 0, index: n, width: w })
    const [entries, t] = await Promise.all([readEntryBundle(a.fetchFile, n, w), a.fetchFile(tPath)])
    if (!t) throw new MissingFileError(`tile ${tPath} is missing`)
    if (t.length !== w * 32) throw new MalformedFileError(`${tPath} is ${t.length} bytes, want ${w * 32}`)
    for (let j = 0; j < w; j++) {
      const lh = leafHash(entries[j]!)
      if (!equalBytes(lh, t.subarray(j * 32, j * 32 + 32))) throw new LeafHashMismatchError(`entry ${n * TILE_WIDTH + j} does not hash to its leaf in ${tPath}`)
      await store.append(lh)
      leaves.push(lh)
    }
    tilesChecked++
    a.onProgress?.(n + 1, bundles)
  }
  const root = await treeHash(cp.size, store)
  if (!equalBytes(root, cp.rootHash)) throw new RootMismatchError(`the tree recomputed from the entries has root ${encodeBase64(root)}, the checkpoint says ${encodeBase64(cp.rootHash)}`)
  for (const t of newTiles(0, cp.size)) {
    if (t.level === 0) continue
    const served = await a.fetchFile(tilePath(t))
    if (!served) throw new MissingFileError(`tile ${tilePath(t)} is missing`)
    if (!equalBytes(served, await readTileData(t, store))) throw new TileMismatchError(`tile ${tilePath(t)} differs from the tree recomputed from the entries`)
    tilesChecked++
  }

  // Inclusion proofs from the served tiles, authenticated against the signed root.
  const reader = servedTileReader(cp.size, cp.rootHash, a.fetchFile, (path) => new MissingFileError(`tile ${path} is missing`))
  const sample = sampleIndexes(cp.size, a.inclusionSample ?? 1000)
  for (const i of sample) {
    try {
      checkRecord(await proveRecord(cp.size, i, reader), cp.size, cp.rootHash, i, leaves[i]!)
    } catch (err) {
      if (err instanceof VerificationError) throw err
      throw new InclusionProofError(`inclusion proof of entry ${i} does not verify: ${(err as Error).message}`)
    }
  }

  let consistentWith: number | undefined
  if (a.previous) {
    const p = a.previous
    if (p.size > cp.size) throw new RollbackError(`the log rolled back: last seen size ${p.size}, now ${cp.size}`)
    try {
      if (p.size > 0) checkTree(await proveTree(cp.size, p.size, reader), cp.size, cp.rootHash, p.size, p.rootHash)
    } catch (err) {
      if (err instanceof VerificationError) throw err
      throw new ForkError(`the log forked: size ${cp.size} is not consistent with the size ${p.size} seen last time`)
    }
    consistentWith = p.size
  }
  return { origin: cp.origin, size: cp.size, rootHash: cp.rootHash, note, cosignatures, entriesChecked: cp.size, tilesChecked, inclusionProofsChecked: sample.length, consistentWith }
}

/**
 * The entry indexes whose inclusion proofs {@link auditLog} checks: every index 0..size−1 when
 * size ≤ max; else the first (0) and the last (size − 1) and an even spread (floor(k·size/max)),
 * max(max, 2) distinct indexes in all. `size` in entries, `max` ≥ 0.
 */
export function sampleIndexes(size: number, max: number): number[] {
  if (size <= max) return Array.from({ length: size }, (_, i) => i)
  const out = new Set<number>([0, size - 1])
  for (let k = 0; out.size < max; k++) out.add(Math.floor((k * size) / max))
  return [...out]
}
