/**
 * The structural part of checking a `tlog/append` result (docs/wire.md): that the ok result is
 * consistent with the checkpoint it carries and proves the entry is in it. On its own it does NOT
 * verify a receipt — a forged checkpoint passes it: {@link import('./verify-append.js').AppendVerifier}
 * runs it after checking the receipt's signature, the checkpoint's log signature and cosignatures,
 * and settles consistency with the pinned checkpoint. Call that, not this.
 */
import { checkRecord, decodeBase64, encodeBase64, leafHash, parseCheckpoint, parseNote } from '../tlog/index.js'
import type { AppendResult } from '../ucan/wire.js'
import { VerificationError } from './verify-errors.js'

/** A published append result whose fields are not those of its own checkpoint (or that is not published). CLI exit 3. */
export class InvalidReceiptError extends VerificationError {
  override name = 'InvalidReceipt'
}

/**
 * Checks a published append result (what `ucanlog append` checks of each receipt): its origin, tree
 * size and root hash are those of its checkpoint note (c2sp.org/tlog-checkpoint), and its inclusion
 * proof (RFC 6962 §2.1.1) puts `entry`'s leaf hash at `index` in that tree. The receipt's signature
 * and the checkpoint's log signature and cosignatures are not checked here (AppendVerifier does).
 * @throws InvalidReceiptError if unpublished, if the checkpoint does not parse, or if a field differs from it.
 * @throws InvalidProofError if the proof does not verify; RangeError if the index is outside the tree.
 */
export function checkAppendResult(r: AppendResult, entry: Uint8Array): void {
  if (!r.published) throw new InvalidReceiptError('the entry is not published yet: there is no checkpoint to check against')
  let cp: ReturnType<typeof parseCheckpoint>
  try {
    cp = parseCheckpoint(parseNote(r.checkpoint).text)
  } catch (err) {
    throw new InvalidReceiptError(`the receipt's checkpoint does not parse: ${(err as Error).message}`)
  }
  if (cp.origin !== r.origin) throw new InvalidReceiptError(`the receipt says origin ${r.origin}, its checkpoint ${cp.origin}`)
  if (cp.size !== r.treeSize) throw new InvalidReceiptError(`the receipt says tree size ${r.treeSize}, its checkpoint ${cp.size}`)
  if (encodeBase64(cp.rootHash) !== r.rootHash) throw new InvalidReceiptError(`the receipt says root ${r.rootHash}, its checkpoint ${encodeBase64(cp.rootHash)}`)
  checkRecord(r.inclusionProof.map(decodeBase64), cp.size, cp.rootHash, r.index, leafHash(entry))
}
