/**
 * `ucanlog/client`: what apps and auditors import (docs/client.md has every export with a snippet).
 *
 * - keys: {@link createKey}, {@link parseKey}, {@link formatKey};
 * - delegations: {@link parseDelegation} (whitespace tolerant), {@link formatDelegation},
 *   {@link delegateSpaceToAgent}, {@link delegateAgentToService};
 * - the client: {@link createClient} → `append(entries, { journal? })`, `read(offset, limit)`, `create()`, `revoke(…)`;
 * - bulk input: {@link entriesFromLines} and the other entry sources, the {@link Journal},
 *   {@link appendBatch} (the streaming pipeline under `append` and `ucanlog append`);
 *   the service over plain HTTP: {@link fetchServiceDID}, {@link fetchLogHead},
 *   {@link fetchWitnessPolicy}, {@link logFiles};
 * - verification: what `append` runs ({@link openAppendVerification}, {@link AppendVerifier}), the
 *   trust store shared with the CLI, {@link checkAppendResult}, {@link auditLog}, checkpoints, notes,
 *   proofs, policies;
 * - the lower level: the invocation builders and {@link connect} (ucanto);
 * - the wire types (docs/wire.md) and the named errors.
 *
 * Entries are bytes (`Uint8Array`) everywhere. Times are Unix seconds unless a field says
 * otherwise; sizes are in bytes or entries as each field says.
 */

/**
 * The version of this API (semver): the major part changes when an export of `ucanlog/client` is
 * removed or changes incompatibly, the minor part when one is added. Independent of the package
 * version and of the wire (docs/wire.md).
 */
export const CLIENT_API_VERSION = '1.0.0'

// Errors and the exit codes they carry
export {
  AppendRefusedError,
  ExitCode,
  InvalidDelegationError,
  InvalidKeyError,
  RequestTooLargeError,
  ServiceRefusedError,
  ServiceUnreachableError,
  UcanlogError,
  UnexpectedAnswerError,
} from './errors.js'

// Keys and delegations
export { createKey, formatKey, parseKey, type Key } from './keys.js'
export { parseDelegation } from './delegations.js'
export { formatDelegation } from '../ucan/delegation.js'
export { delegateAgentToService, delegateSpaceToAgent, DEFAULT_DELEGATION_LIFETIME, DEFAULT_INVOCATION_LIFETIME } from '../ucan/client.js'

// The client
export { createClient, type AppendOptions, type AppendOutcome, type EntryFailure, type ClientOptions, type ReadEntries, type RevokeOptions, type UcanlogClient } from './client.js'
export { fetchLogHead, fetchServiceDID, fetchWitnessPolicy, logFiles, type Fetch, type LogHead } from './http.js'

// Bulk input (bytes from lines, arguments, files), the exactly-once journal, the streaming bulk append under `append`
export {
  EntryInputError,
  EntryTooLargeError,
  InvalidBase64Error,
  InvalidUtf8Error,
  entriesFromArguments,
  entriesFromLines,
  entryFromFile,
  isUtf8,
  type LineFormat,
  type SourceEntry,
} from './entries.js'
export { Journal, JournalError, JournalMismatchError, type JournalEntry, type RecordedError } from './journal.js'
export {
  JOURNAL_INVOCATION_LIFETIME,
  RESEND_MARGIN,
  appendBatch,
  type AppendBatchError,
  type AppendBatchOptions,
  type AppendSummary,
  type EntryOutcome,
  type ReceiptVerifier,
} from './append-batch.js'

// Verification: receipts (what append runs), the trust store (pins shared with the CLI), the auditor
export { InvalidReceiptError, checkAppendResult } from './receipt.js'
export { AppendVerifier, verifyServiceReceipt, type AppendVerifierOptions, type LogFileFetcher, type VerifiedReceipt } from './verify-append.js'
export { openAppendVerification, type AppendVerification, type AppendVerificationOptions } from './verify-session.js'
export { verifyCheckpointNote, type CheckpointAnchors, type VerifiedCheckpoint } from './verify-checkpoint.js'
export { NoPublishedLogError, TrustStoreError, defaultStateDir, loadTrust, saveTrust, type SeenCheckpoint, type TrustAnchors } from './trust-store.js'
// Every named verification failure (exit code 3): VerificationError and one subclass per check.
export * from './verify-errors.js'
export { AuditError, LeafHashMismatchError, RootMismatchError, TileMismatchError, auditLog, type AuditInput, type AuditReport } from './audit.js'
export {
  type Checkpoint,
  type Hash,
  type NoteSignature,
  type NoteVerifier,
  type Policy,
  type PolicyWitness,
  InvalidProofError,
  InvalidSignatureError,
  MalformedBase64Error,
  MalformedCheckpointError,
  MalformedNoteError,
  MAX_ENTRY_SIZE,
  PolicyError,
  UnverifiedNoteError,
  checkRecord,
  checkTree,
  cosignatureVerifier,
  decodeBase64,
  ed25519Verifier,
  encodeBase64,
  leafHash,
  openNote,
  parseCheckpoint,
  parseNote,
  parsePolicy,
  verifiedWitnesses,
} from '../tlog/index.js'

// The lower level: ucanto invocations and connection
export { appendInvocation, connect, createInvocation, readInvocation, revokeInvocation } from '../ucan/client.js'

// The wire (docs/wire.md)
export { DEFAULT_MAX_BODY_BYTES, type AppendResult, type CreateResult, type ReadResult, type RevokeResult, type TlogService } from '../ucan/wire.js'
export type { AppendFailure, CreateFailure, FailureJSON, ReadFailure, RevokeFailure } from '../ucan/errors.js'
