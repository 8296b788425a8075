/**
 * Verifying one checkpoint note against what a client pinned — the checks the auditor and the
 * append-receipt verifier share: the log signature (c2sp.org/signed-note, Ed25519 vkey), the
 * canonical checkpoint text and its origin (c2sp.org/tlog-checkpoint), and the witness cosignatures
 * the policy requires (c2sp.org/tlog-cosignature, c2sp.org/tlog-policy).
 */
import { type Checkpoint, type Policy, ed25519Verifier, openNote, parseCheckpoint, parseNote, verifiedWitnesses } from '../tlog/index.js'
import { CosignatureInvalidError, LogSignatureError, MalformedFileError, OriginMismatchError, WitnessPolicyError } from './verify-errors.js'

/** Most a cosignature's timestamp may be ahead of the verifier's clock, in seconds (c2sp.org/tlog-cosignature). */
export const MAX_COSIGNATURE_SKEW = 600

/** What a checkpoint note is verified against: the pinned origin, log vkey and witness policy. */
export interface CheckpointAnchors {
  /** Expected origin line (c2sp.org/tlog-checkpoint). */
  origin: string
  /** The log's vkey (c2sp.org/signed-note, type 0x01, key name = origin). */
  logVkey: string
  /** The witness policy whose quorum the cosignatures must meet. */
  policy: Policy
  /** The verifier's clock, Unix seconds, for refusing cosignatures from the future. */
  now: number
}

/** A verified checkpoint: the parsed checkpoint (size in entries, 32-byte root), the whole note, and the verified cosignatures (timestamps in Unix seconds). */
export interface VerifiedCheckpoint {
  checkpoint: Checkpoint
  note: string
  /** Verified cosignatures by policy witnesses, one per witness, in note order. */
  cosignatures: { name: string; keyName: string; timestamp: number }[]
}

/**
 * Verifies a checkpoint note: signed by `logVkey`, canonical checkpoint text with the pinned origin,
 * every signature line by a policy witness's key verifying over it and dated at most
 * {@link MAX_COSIGNATURE_SKEW} seconds ahead of `now`, and the policy's quorum met.
 * @throws LogSignatureError (LogSignatureInvalid) when the note does not parse or the log signature is absent or bad;
 *   MalformedFileError (MalformedFile) when the signed text is not a checkpoint; OriginMismatchError;
 *   CosignatureInvalidError; WitnessPolicyError (WitnessPolicyNotMet).
 */
export function verifyCheckpointNote(note: string, a: CheckpointAnchors): VerifiedCheckpoint {
  let text: string
  try {
    text = openNote(note, [ed25519Verifier(a.logVkey)]).text
  } catch (err) {
    throw new LogSignatureError(`checkpoint log signature does not verify with ${a.logVkey}: ${(err as Error).message}`)
  }
  let checkpoint: Checkpoint
  try {
    checkpoint = parseCheckpoint(text)
  } catch (err) {
    throw new MalformedFileError(`checkpoint: ${(err as Error).message}`)
  }
  if (checkpoint.origin !== a.origin) throw new OriginMismatchError(`checkpoint origin ${checkpoint.origin} is not ${a.origin}`)

  // Every line by a policy witness's key must verify over this checkpoint; then the quorum must be met.
  const textBytes = new TextEncoder().encode(text)
  const cosignatures: VerifiedCheckpoint['cosignatures'] = []
  for (const sig of parseNote(note).signatures) {
    const w = a.policy.witnesses.find((x) => x.verifier.name === sig.name && x.verifier.keyId === sig.keyId)
    if (!w) continue
    if (!w.verifier.verify(textBytes, sig.signature)) throw new CosignatureInvalidError(`cosignature by ${w.name} (${sig.name}) does not verify over this checkpoint`)
    const timestamp = w.verifier.timestamp(sig.signature)
    if (timestamp > a.now + MAX_COSIGNATURE_SKEW) throw new CosignatureInvalidError(`cosignature by ${w.name} is dated in the future (${timestamp})`)
    if (!cosignatures.some((c) => c.name === w.name)) cosignatures.push({ name: w.name, keyName: sig.name, timestamp })
  }
  const cosigned = verifiedWitnesses(a.policy, note)
  if (!a.policy.satisfied(cosigned)) {
    throw new WitnessPolicyError(`witness policy not satisfied: cosigned by [${[...cosigned].join(', ')}], quorum ${a.policy.quorum}`)
  }
  return { checkpoint, note, cosignatures }
}
