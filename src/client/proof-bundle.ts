/**
 * Proof bundles (issue 13 item 3, docs/auditing.md "Proof bundles", docs/client.md): a
 * self-contained JSON receipt that one entry is in a log — the entry, its index and RFC 6962 leaf
 * hash, its inclusion proof (RFC 6962 §2.1.1) and the cosigned checkpoint note
 * (c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature) whose root the proof leads to. Anyone with
 * the log's vkey and a witness policy checks it offline ({@link verifyProofBundle});
 * {@link proveEntry} builds one from a log's public files and verifies it before returning it.
 *
 * The format (`format: "ucanlog-proof-bundle/v1"`): exactly the keys `format`, `origin`, `index`
 * (integer ≥ 0), `leafHash` (base64, 32 bytes), `entry` (base64, 1..65535 bytes), `inclusionProof`
 * (array of base64 32-byte hashes, leaf end first, at most 64) and `checkpoint` (the note text).
 * Base64 is canonical padded standard base64 (src/tlog/encoding.ts); anything else is
 * {@link MalformedProofBundleError}.
 */
import {
  type Hash,
  MAX_ENTRY_SIZE,
  TILE_WIDTH,
  checkRecord,
  decodeBase64,
  decodeHash,
  encodeBase64,
  equalBytes,
  leafHash,
  proveRecord,
} from '../tlog/index.js'
import { LeafHashMismatchError } from './audit.js'
import { checkConsistentWith } from './consistency.js'
import { readEntryBundle, servedTileReader } from './tiles.js'
import { type CheckpointAnchors, type VerifiedCheckpoint, verifyCheckpointNote } from './verify-checkpoint.js'
import { InclusionProofError, MissingFileError, OriginMismatchError, VerificationError } from './verify-errors.js'

/** The `format` of the bundles this version writes and reads. */
export const PROOF_BUNDLE_FORMAT = 'ucanlog-proof-bundle/v1'
/** Most hashes in an inclusion proof: a tree of up to 2^64 entries. */
export const MAX_PROOF_HASHES = 64

/** A proof bundle, decoded (see the module comment for the JSON). */
export interface ProofBundle {
  format: typeof PROOF_BUNDLE_FORMAT
  /** The log's origin (c2sp.org/tlog-checkpoint). */
  origin: string
  /** The entry's index in the log, ≥ 0. */
  index: number
  /** RFC 6962 leaf hash of `entry`: SHA-256(0x00 ‖ entry), 32 bytes. */
  leafHash: Hash
  /** The entry's bytes, 1..65535. */
  entry: Uint8Array
  /** RFC 6962 §2.1.1 inclusion proof in the checkpoint's tree, leaf end first. */
  inclusionProof: Hash[]
  /** The cosigned checkpoint note (signed-note text). */
  checkpoint: string
}

/** What {@link verifyProofBundle} verified: the bundle and its checkpoint (size, root, cosignatures). */
export interface VerifiedProof {
  bundle: ProofBundle
  checkpoint: VerifiedCheckpoint
}

/** A proof bundle that is not valid JSON of the v1 format (a key missing or extra, a value of the wrong type or encoding). Exit 3. */
export class MalformedProofBundleError extends VerificationError {
  override name = 'MalformedProofBundle'
}
/** The entry asked for is not in the log's published tree (index ≥ its size, or no entry with that content). Exit 3. */
export class EntryNotFoundError extends VerificationError {
  override name = 'EntryNotFound'
}

const KEYS = ['format', 'origin', 'index', 'leafHash', 'entry', 'inclusionProof', 'checkpoint'] as const

/** The bundle as JSON text (pretty-printed, keys in the order of the module comment, a final newline). */
export function formatProofBundle(b: ProofBundle): string {
  const json = {
    format: b.format,
    origin: b.origin,
    index: b.index,
    leafHash: encodeBase64(b.leafHash),
    entry: encodeBase64(b.entry),
    inclusionProof: b.inclusionProof.map(encodeBase64),
    checkpoint: b.checkpoint,
  }
  return JSON.stringify(json, null, 2) + '\n'
}

/**
 * Parses a bundle's JSON text strictly (the module comment's format). Checks shapes only: nothing is verified.
 * @throws MalformedProofBundleError naming the first bad field.
 */
export function parseProofBundle(text: string): ProofBundle {
  let j: Record<string, unknown>
  try {
    j = JSON.parse(text) as Record<string, unknown>
  } catch (err) {
    throw new MalformedProofBundleError(`not JSON: ${(err as Error).message}`)
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new MalformedProofBundleError('not a JSON object')
  for (const k of Object.keys(j)) if (!(KEYS as readonly string[]).includes(k)) throw new MalformedProofBundleError(`unknown key ${JSON.stringify(k)}`)
  for (const k of KEYS) if (!(k in j)) throw new MalformedProofBundleError(`"${k}" is missing`)
  if (j.format !== PROOF_BUNDLE_FORMAT) throw new MalformedProofBundleError(`"format" is ${JSON.stringify(j.format)}, not ${PROOF_BUNDLE_FORMAT}`)
  if (typeof j.origin !== 'string' || j.origin === '') throw new MalformedProofBundleError('"origin" is not a non-empty string')
  if (!Number.isSafeInteger(j.index) || (j.index as number) < 0) throw new MalformedProofBundleError('"index" is not an integer ≥ 0')
  if (typeof j.checkpoint !== 'string') throw new MalformedProofBundleError('"checkpoint" is not a string')
  const hash = (v: unknown, what: string) => {
    try {
      if (typeof v !== 'string') throw new Error('not a string')
      return decodeHash(v)
    } catch (err) {
      throw new MalformedProofBundleError(`${what} is not base64 of 32 bytes: ${(err as Error).message}`)
    }
  }
  let entry: Uint8Array
  try {
    if (typeof j.entry !== 'string') throw new Error('not a string')
    entry = decodeBase64(j.entry)
  } catch (err) {
    throw new MalformedProofBundleError(`"entry" is not base64: ${(err as Error).message}`)
  }
  if (entry.length < 1 || entry.length > MAX_ENTRY_SIZE) throw new MalformedProofBundleError(`"entry" is ${entry.length} bytes, not 1..${MAX_ENTRY_SIZE}`)
  if (!Array.isArray(j.inclusionProof) || j.inclusionProof.length > MAX_PROOF_HASHES) throw new MalformedProofBundleError(`"inclusionProof" is not an array of at most ${MAX_PROOF_HASHES} hashes`)
  return {
    format: PROOF_BUNDLE_FORMAT,
    origin: j.origin,
    index: j.index as number,
    leafHash: hash(j.leafHash, '"leafHash"'),
    entry,
    inclusionProof: j.inclusionProof.map((h: unknown, k: number) => hash(h, `"inclusionProof"[${k}]`)),
    checkpoint: j.checkpoint,
  }
}

/**
 * Verifies a bundle offline against the pinned anchors: its origin is the pinned one, the checkpoint
 * note verifies ({@link verifyCheckpointNote}: log signature, origin, cosignatures per policy), the
 * entry hashes to `leafHash`, and the inclusion proof leads from it at `index` to the checkpoint's root.
 * @throws OriginMismatchError, the errors of verifyCheckpointNote (LogSignatureInvalid,
 *   MalformedFile, OriginMismatch, CosignatureInvalid, WitnessPolicyNotMet), LeafHashMismatchError,
 *   InclusionProofError (InclusionProofInvalid) — all exit 3.
 */
export function verifyProofBundle(b: ProofBundle, a: CheckpointAnchors): VerifiedProof {
  if (b.origin !== a.origin) throw new OriginMismatchError(`the bundle is for ${b.origin}, not ${a.origin}`)
  const checkpoint = verifyCheckpointNote(b.checkpoint, a)
  if (!equalBytes(leafHash(b.entry), b.leafHash)) throw new LeafHashMismatchError(`the entry does not hash to the bundle's leaf hash ${encodeBase64(b.leafHash)}`)
  const cp = checkpoint.checkpoint
  if (b.index >= cp.size) throw new InclusionProofError(`index ${b.index} is not in the checkpoint's tree of ${cp.size} entries`)
  try {
    checkRecord(b.inclusionProof, cp.size, cp.rootHash, b.index, b.leafHash)
  } catch (err) {
    throw new InclusionProofError(`the inclusion proof of entry ${b.index} does not lead to the checkpoint's root: ${(err as Error).message}`)
  }
  return { bundle: b, checkpoint }
}

/** What {@link proveEntry} needs: the log's files, the pinned anchors, the entry's index and the checkpoint seen last (if any). */
export interface ProveInput {
  /** Fetches a file of the log by its tlog-tiles path (`checkpoint`, `tile/0/000`, …); undefined = 404. */
  fetchFile(path: string): Promise<Uint8Array | undefined>
  anchors: CheckpointAnchors
  /** The entry's index, ≥ 0. */
  index: number
  /** The checkpoint seen last (the trust store's), which the current one must extend. */
  previous?: { size: number; rootHash: Hash }
}

/**
 * Builds the proof bundle of entry `index` from the log's public files and verifies it
 * ({@link verifyProofBundle}) before returning it; the current checkpoint must also be consistent
 * with `previous`.
 * @throws EntryNotFoundError (index ≥ the published size), MissingFileError, MalformedFileError,
 *   RollbackError, ForkError and every error of {@link verifyProofBundle}.
 */
export async function proveEntry(p: ProveInput): Promise<VerifiedProof> {
  const cpBytes = await p.fetchFile('checkpoint')
  if (!cpBytes) throw new MissingFileError('the log has no published checkpoint')
  const note = Buffer.from(cpBytes).toString('utf8')
  const { checkpoint: cp } = verifyCheckpointNote(note, p.anchors)
  const reader = servedTileReader(cp.size, cp.rootHash, p.fetchFile, (path) => new MissingFileError(`tile ${path} is missing`))
  if (p.previous) await checkConsistentWith(p.previous, cp, reader)
  if (!Number.isSafeInteger(p.index) || p.index < 0 || p.index >= cp.size) throw new EntryNotFoundError(`entry ${p.index} is not in the published tree of ${cp.size} entries`)
  const n = Math.floor(p.index / TILE_WIDTH)
  const entry = (await readEntryBundle(p.fetchFile, n, Math.min(TILE_WIDTH, cp.size - n * TILE_WIDTH)))[p.index - n * TILE_WIDTH]!
  let inclusionProof: Hash[]
  try {
    inclusionProof = await proveRecord(cp.size, p.index, reader)
  } catch (err) {
    if (err instanceof VerificationError) throw err
    throw new InclusionProofError(`the served tiles give no inclusion proof of entry ${p.index}: ${(err as Error).message}`)
  }
  const bundle: ProofBundle = { format: PROOF_BUNDLE_FORMAT, origin: p.anchors.origin, index: p.index, leafHash: leafHash(entry), entry, inclusionProof, checkpoint: note }
  return verifyProofBundle(bundle, p.anchors)
}
