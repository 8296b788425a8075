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
  ed25519Verifier,
  encodeBase64,
  entryBundlePath,
  leafHash,
  newTiles,
  openNote,
  parseCheckpoint,
  parseEntryBundle,
  parseNote,
  proveRecord,
  proveTree,
  readTileData,
  tilePath,
  treeHash,
  verifiedWitnesses,
  equalBytes,
} from '../tlog/index.js'
import { servedTileReader } from './tiles.js'

/** Exit status of `ucanlog audit` when the log fails a check (1 = any other error: usage, network, state). */
export const AUDIT_FAILED_EXIT_CODE = 2

/**
 * An audit check that failed: the message says which and why. Each check throws its own subclass,
 * whose `name` the CLI prints; `ucanlog audit` exits with {@link AUDIT_FAILED_EXIT_CODE} for all of them.
 */
export class AuditError extends Error {
  override name = 'AuditError'
  /** The exit status of `ucanlog audit` when this check fails. */
  readonly exitCode = AUDIT_FAILED_EXIT_CODE
}

/** A file the checkpoint covers is not served: the checkpoint, an entry bundle or a tile (c2sp.org/tlog-tiles). */
export class MissingFileError extends AuditError {
  override name = 'MissingFile'
}
/** A served file does not parse: a checkpoint text, an entry bundle, or a tile of the wrong length. */
export class MalformedFileError extends AuditError {
  override name = 'MalformedFile'
}
/** The checkpoint's signature by the pinned log key (c2sp.org/signed-note, Ed25519) is absent or does not verify. */
export class LogSignatureError extends AuditError {
  override name = 'LogSignatureInvalid'
}
/** The checkpoint's origin line is not the expected origin (c2sp.org/tlog-checkpoint). */
export class OriginMismatchError extends AuditError {
  override name = 'OriginMismatch'
}
/** The service's /head shows another log key than the one pinned at the first audit. */
export class LogKeyChangedError extends AuditError {
  override name = 'LogKeyChanged'
}
/**
 * A signature line with a policy witness's key name and key ID does not verify over this checkpoint
 * (forged bytes, or a cosignature of another checkpoint), or is dated more than 10 minutes ahead of
 * the auditor's clock (c2sp.org/tlog-cosignature). As Go's note.Open, a known key's bad signature
 * rejects the note rather than being skipped.
 */
export class CosignatureInvalidError extends AuditError {
  override name = 'CosignatureInvalid'
}
/** The verified cosignatures do not meet the witness policy's quorum (c2sp.org/tlog-policy). */
export class WitnessPolicyError extends AuditError {
  override name = 'WitnessPolicyNotMet'
}
/** An entry does not hash (RFC 6962 leaf hash) to its leaf in the level-0 tile: the bundle or the tile was altered. */
export class LeafHashMismatchError extends AuditError {
  override name = 'LeafHashMismatch'
}
/** The tree recomputed from the entries has another root than the signed checkpoint's. */
export class RootMismatchError extends AuditError {
  override name = 'RootMismatch'
}
/** A served higher-level tile differs from the one recomputed from the entries. */
export class TileMismatchError extends AuditError {
  override name = 'TileMismatch'
}
/** An inclusion proof (RFC 6962 §2.1.1) built from the served tiles does not verify against the signed root. */
export class InclusionProofError extends AuditError {
  override name = 'InclusionProofInvalid'
}
/** The checkpoint is smaller than the one this auditor saw last time: the log rolled back. */
export class RollbackError extends AuditError {
  override name = 'LogRolledBack'
}
/** The checkpoint is not consistent (RFC 6962 §2.1.2) with the one this auditor saw last time: the log forked. */
export class ForkError extends AuditError {
  override name = 'LogForked'
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
  let text: string
  try {
    text = openNote(note, [ed25519Verifier(a.logVkey)]).text
  } catch (err) {
    throw new LogSignatureError(`checkpoint log signature does not verify with ${a.logVkey}: ${(err as Error).message}`)
  }
  let cp: ReturnType<typeof parseCheckpoint>
  try {
    cp = parseCheckpoint(text)
  } catch (err) {
    throw new MalformedFileError(`checkpoint: ${(err as Error).message}`)
  }
  if (cp.origin !== a.origin) throw new OriginMismatchError(`checkpoint origin ${cp.origin} is not ${a.origin}`)

  // Every line by a policy witness's key must verify over this checkpoint; then the quorum must be met.
  const now = a.now ?? Math.floor(Date.now() / 1000)
  const textBytes = new TextEncoder().encode(text)
  const cosignatures: AuditReport['cosignatures'] = []
  for (const sig of parseNote(note).signatures) {
    const w = a.policy.witnesses.find((x) => x.verifier.name === sig.name && x.verifier.keyId === sig.keyId)
    if (!w) continue
    if (!w.verifier.verify(textBytes, sig.signature)) throw new CosignatureInvalidError(`cosignature by ${w.name} (${sig.name}) does not verify over this checkpoint`)
    const timestamp = w.verifier.timestamp(sig.signature)
    if (timestamp > now + 600) throw new CosignatureInvalidError(`cosignature by ${w.name} is dated in the future (${timestamp})`)
    if (!cosignatures.some((c) => c.name === w.name)) cosignatures.push({ name: w.name, keyName: sig.name, timestamp })
  }
  const cosigned = verifiedWitnesses(a.policy, note)
  if (!a.policy.satisfied(cosigned)) {
    throw new WitnessPolicyError(`witness policy not satisfied: cosigned by [${[...cosigned].join(', ')}], quorum ${a.policy.quorum}`)
  }

  // Re-hash every entry bundle against the level-0 tiles, collecting the leaves.
  const store = new MemoryHashStore()
  const bundles = Math.ceil(cp.size / TILE_WIDTH)
  let tilesChecked = 0
  const leaves: Hash[] = []
  for (let n = 0; n < bundles; n++) {
    const w = Math.min(TILE_WIDTH, cp.size - n * TILE_WIDTH)
    const bPath = entryBundlePath(n, w)
    const tPath = tilePath({ level: 0, index: n, width: w })
    const [b, t] = await Promise.all([a.fetchFile(bPath), a.fetchFile(tPath)])
    if (!b) throw new MissingFileError(`entry bundle ${bPath} is missing`)
    if (!t) throw new MissingFileError(`tile ${tPath} is missing`)
    let entries: Uint8Array[]
    try {
      entries = parseEntryBundle(b)
    } catch (err) {
      throw new MalformedFileError(`${bPath}: ${(err as Error).message}`)
    }
    if (entries.length !== w) throw new MalformedFileError(`${bPath} has ${entries.length} entries, want ${w}`)
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
      if (err instanceof AuditError) throw err
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
      if (err instanceof AuditError) throw err
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
