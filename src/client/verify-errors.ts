/**
 * The named failures of client-side verification, shared by the auditor (`ucanlog audit`,
 * audit.ts) and the append-receipt verifier (verify-append.ts): each is a {@link VerificationError}
 * subclass whose `name` says which check failed and whose `exitCode` is 3 (the CLI contract:
 * 3 = verification failed). Messages say what was expected and what was found.
 */

import { ExitCode, UcanlogError } from './errors.js'

/** Exit status of a CLI command when a verification check fails: `ExitCode.VerificationFailed` (3). */
export const VERIFICATION_FAILED_EXIT_CODE = ExitCode.VerificationFailed

/** A verification check that failed: the message says which and why; subclasses name the check. Exit 3. */
export class VerificationError extends UcanlogError {
  override name = 'VerificationError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.VerificationFailed, options)
  }
}

/**
 * A bulk append's receipt did not verify (append-batch.ts): the check's own error is `cause` and
 * the message names it and the input line. Nothing is recorded as the entry's outcome: a rerun with
 * the journal resends the same invocation and checks the answer again. Exit 3.
 */
export class VerificationFailedError extends VerificationError {
  override name = 'VerificationFailed'
}

/** A file a checkpoint covers is not served: the checkpoint, an entry bundle or a tile (c2sp.org/tlog-tiles). */
export class MissingFileError extends VerificationError {
  override name = 'MissingFile'
}
/** A served file does not parse: a checkpoint text, an entry bundle, or a tile of the wrong length. */
export class MalformedFileError extends VerificationError {
  override name = 'MalformedFile'
}
/** The checkpoint's signature by the pinned log key (c2sp.org/signed-note, Ed25519) is absent or does not verify. */
export class LogSignatureError extends VerificationError {
  override name = 'LogSignatureInvalid'
}
/** The checkpoint's origin line (or a receipt's origin or log id) is not the pinned origin (c2sp.org/tlog-checkpoint). */
export class OriginMismatchError extends VerificationError {
  override name = 'OriginMismatch'
}
/** The service's /head shows another log key than the one pinned. */
export class LogKeyChangedError extends VerificationError {
  override name = 'LogKeyChanged'
}
/** The service's /did shows another service DID than the one pinned (receipts would be signed by another key). */
export class ServiceKeyChangedError extends VerificationError {
  override name = 'ServiceKeyChanged'
}
/**
 * A signature line with a policy witness's key name and key ID does not verify over this checkpoint
 * (forged bytes, or a cosignature of another checkpoint), or is dated more than 10 minutes ahead of
 * the verifier's clock (c2sp.org/tlog-cosignature). As Go's note.Open, a known key's bad signature
 * rejects the note rather than being skipped.
 */
export class CosignatureInvalidError extends VerificationError {
  override name = 'CosignatureInvalid'
}
/** The verified cosignatures do not meet the witness policy's quorum (c2sp.org/tlog-policy). */
export class WitnessPolicyError extends VerificationError {
  override name = 'WitnessPolicyNotMet'
}
/** An inclusion proof (RFC 6962 §2.1.1) does not verify against the signed root. */
export class InclusionProofError extends VerificationError {
  override name = 'InclusionProofInvalid'
}
/** The log's checkpoint is smaller than one seen before (pinned, or in a receipt): the log rolled back. */
export class RollbackError extends VerificationError {
  override name = 'LogRolledBack'
}
/** A checkpoint is not consistent (RFC 6962 §2.1.2) with one seen before: the log forked. */
export class ForkError extends VerificationError {
  override name = 'LogForked'
}
/** Two checkpoints of the same log with the same size and different roots: the service shows different trees to different views. */
export class SplitViewError extends VerificationError {
  override name = 'SplitView'
}
/** A receipt not issued by the pinned service DID, or whose signature does not verify with it. */
export class ReceiptSignatureError extends VerificationError {
  override name = 'ReceiptSignatureInvalid'
}
/** A receipt that does not answer the invocation sent (its `ran` is another invocation's link), or whose result is not a `tlog/append` result of the pinned log. */
export class ReceiptMismatchError extends VerificationError {
  override name = 'ReceiptMismatch'
}
