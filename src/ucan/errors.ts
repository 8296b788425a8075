/**
 * Named failures of the ucanlog UCAN RPC (docs/wire.md): of `tlog/append`, `tlog/read`, `tlog/create` and `ucan/revoke`.
 *
 * Each is a ucanto `Failure`, so a receipt carries it as `out.error`. A receipt error is encoded
 * through `toJSON()`, and ours return exactly `{ name, message }`: never a stack, a cause, or the
 * invocation's `nb` (which holds the whole entry and delegation). Clients branch on `name`, which is
 * stable; `message` is short, human-readable and may change. Interpolated values are cut to
 * {@link MAX_DETAIL_LENGTH} characters.
 */
import { Failure } from '@ucanto/core'
import { isDatabaseUnavailable } from '../storage/postgres/errors.js'
import { storageFailedCode } from '../storage/storage-failed.js'
import { storageFullCode, storageFullMessage } from '../storage/storage-full.js'

/** Longest interpolated value (a DID, CID, capability, or cause message) kept in a message, in characters. */
export const MAX_DETAIL_LENGTH = 100

/** Cuts `value` to {@link MAX_DETAIL_LENGTH} characters, marking the cut with `…`. */
export function truncate(value: unknown): string {
  const s = String(value)
  return s.length > MAX_DETAIL_LENGTH ? `${s.slice(0, MAX_DETAIL_LENGTH)}…` : s
}

/** The wire form of every ucanlog failure: what a client sees in `receipt.out.error`. */
export interface FailureJSON {
  name: string
  message: string
}

/** Base of the ucanlog failures: a fixed `name`, a short message, and a stack-free `toJSON()`. */
abstract class TlogFailure extends Failure {
  abstract override readonly name: string
  readonly #message: string

  constructor(message: string) {
    super()
    this.#message = message
  }

  override describe(): string {
    return this.#message
  }

  /** `{ name, message }` only: what goes into the receipt. */
  override toJSON(): ReturnType<Failure['toJSON']> {
    const json: FailureJSON = { name: this.name, message: this.message }
    // ucanto types `stack` as present-but-maybe-undefined; it is left out on purpose (never sent).
    return json as ReturnType<Failure['toJSON']>
  }
}

/** The invocation's `aud`, or the `nb.delegation`'s audience, is not the service DID. */
export class InvalidAudience extends TlogFailure {
  override readonly name = 'InvalidAudience' as const
}

/**
 * A signature does not verify: the invocation's, or one in the delegation chain; or the
 * invocation's block does not match its CID (its signed bytes were altered).
 */
export class InvalidSignature extends TlogFailure {
  override readonly name = 'InvalidSignature' as const
}

/** The invocation, or a delegation in the chain, is past its `exp` (Unix seconds). */
export class Expired extends TlogFailure {
  override readonly name = 'Expired' as const
}

/** The invocation, or a delegation in the chain, is before its `nbf` (Unix seconds). */
export class NotValidBefore extends TlogFailure {
  override readonly name = 'NotValidBefore' as const
}

/** The invocation has no `exp`, or its `exp` is further ahead than the service's lifetime bound. */
export class InvalidExpiry extends TlogFailure {
  override readonly name = 'InvalidExpiry' as const
}

/**
 * `nb.delegation` is not a delegation: bad base64, not a CAR-codec identity CID, not a UCAN
 * archive, a UCAN block that does not match its CID, or a chain beyond the parser's bounds.
 */
export class InvalidDelegation extends TlogFailure {
  override readonly name = 'InvalidDelegation' as const
}

/**
 * The `nb.delegation` was issued by someone other than the invocation's issuer: a delegation
 * lifted from another agent's request cannot be replayed by a third party.
 */
export class DelegationIssuerMismatch extends TlogFailure {
  override readonly name = 'DelegationIssuerMismatch' as const
}

/**
 * The delegation chain does not grant a required capability (`space/blob/add`, `space/index/add`
 * or `upload/add`) on the space; the message names which.
 */
export class Unauthorized extends TlogFailure {
  override readonly name = 'Unauthorized' as const
}

/** A UCAN in the invocation's or the delegation's chain has been revoked by a principal in its chain. */
export class Revoked extends TlogFailure {
  override readonly name = 'Revoked' as const
}

/** `nb.data` is not canonical padded standard base64 (RFC 4648 §4), or decodes to zero bytes. */
export class InvalidData extends TlogFailure {
  override readonly name = 'InvalidData' as const
}

/** `nb.data` decodes to more than 65535 bytes (a C2SP entry bundle length prefix is 2 bytes). */
export class EntryTooLarge extends TlogFailure {
  override readonly name = 'EntryTooLarge' as const
}

/**
 * The invocation does not carry exactly one well-formed capability of an ability this service
 * implements (`tlog/append`, `tlog/read`, `tlog/create`, `ucan/revoke`): wrong `can`, `with` not
 * a DID of the right kind, or malformed `nb`.
 */
export class InvalidCapability extends TlogFailure {
  override readonly name = 'InvalidCapability' as const
}

/**
 * `tlog/read` found its request's response budget (`maxResponseBytes`, shared by every invocation
 * of one RPC request) too spent to return even one entry: read the rest in another request.
 */
export class ResponseTooLarge extends TlogFailure {
  override readonly name = 'ResponseTooLarge' as const
}

/** `tlog/read` of a space that has no log. */
export class UnknownLog extends TlogFailure {
  override readonly name = 'UnknownLog' as const
}

/**
 * A UCAN (the invocation, or one in `nb.delegation`'s chain) lists the same proof twice in its
 * `prf`: nothing honest does, and each copy doubles what a per-path walk of the chain costs.
 */
export class DuplicateProof extends TlogFailure {
  override readonly name = 'DuplicateProof' as const
}

/** The proof links of a UCAN form a cycle (blocks stored under CIDs that are not theirs). */
export class ProofCycle extends TlogFailure {
  override readonly name = 'ProofCycle' as const
}

/**
 * The proof graph of the invocation or of `nb.delegation` is over a bound of proof-graph.ts
 * (distinct UCANs, proof links, root-to-UCAN paths or depth) or of the delegation's validator
 * work; the message names which. Refused before any signature of the graph is checked.
 */
export class ProofGraphTooLarge extends TlogFailure {
  override readonly name = 'ProofGraphTooLarge' as const
}

/** Any failure of the proof graph check (proof-graph.ts). */
export type ProofGraphFailure = DuplicateProof | ProofCycle | ProofGraphTooLarge

/**
 * Something failed inside the service (a store, the log). Carries no detail; the cause is logged
 * server-side. Also returned when the revocation store cannot answer (authorization fails closed).
 */
export class InternalError extends TlogFailure {
  override readonly name = 'InternalError' as const
  constructor(message = 'internal error') {
    super(message)
  }
}

/**
 * The space already has its share of unexpired invocations in the replay guard (`--replay-per-space`):
 * its appends are refused until some of them pass their `exp`. Only that space is refused; shorter
 * invocation lifetimes use less of the share. Nothing was appended.
 */
export class TooManyPendingInvocations extends TlogFailure {
  override readonly name = 'TooManyPendingInvocations' as const
}

/**
 * The same invocation is being run by another instance of the service (several instances on one
 * database) and had not finished within the wait bound. Nothing new ran; send the same
 * invocation again later (it is answered with the first outcome, never appended twice).
 */
export class InvocationPending extends TlogFailure {
  override readonly name = 'InvocationPending' as const
}

/**
 * `with` names a DID the service itself controls (its own identity, or another key it holds such
 * as the bundled witness's): it is never a space. Checked before any signature or chain work,
 * because the service's own authority would otherwise stand in for a grant on it.
 */
export class ReservedSpace extends TlogFailure {
  override readonly name = 'ReservedSpace' as const
}

/**
 * The invocation's verified issuer, or the space a verified chain authorized it on, is over its
 * rate limit: nothing ran, and the same invocation may be sent again later (it was not recorded
 * as answered). When every invocation of a request is refused this way the whole answer is HTTP
 * 429 with `Retry-After` instead of receipts.
 */
export class RateLimited extends TlogFailure {
  override readonly name = 'RateLimited' as const
}

/** Any failure a `tlog/append` can return. */
export type AppendFailure =
  | LogRefusal
  | InvalidAudience
  | InvalidSignature
  | Expired
  | NotValidBefore
  | InvalidExpiry
  | InvalidDelegation
  | ProofGraphFailure
  | DelegationIssuerMismatch
  | Unauthorized
  | Revoked
  | InvalidData
  | EntryTooLarge
  | InvalidCapability
  | TooManyPendingInvocations
  | InvocationPending
  | ReservedSpace
  | RateLimited
  | InternalError

/** Any failure a `tlog/read` can return. */
export type ReadFailure =
  | LogRefusal
  | InvalidAudience
  | InvalidExpiry
  | InvalidSignature
  | Expired
  | NotValidBefore
  | InvalidCapability
  | ReservedSpace
  | RateLimited
  | UnknownLog
  | ResponseTooLarge
  | ProofGraphFailure
  | InternalError

/**
 * A `ucan/revoke` invocation does not attach the blocks of the UCAN it revokes (`nb.ucan`) or of
 * a link in `nb.proof`, or an attached UCAN does not match its CID (storacha's name for it).
 */
export class UCANNotFound extends TlogFailure {
  override readonly name = 'UCANNotFound' as const
}

/**
 * A `ucan/revoke` whose principal (`with`) is neither the issuer nor the audience of the revoked
 * UCAN (`nb.ucan`) nor of a UCAN on the proof path `nb.proof` names (each a proof of the one
 * before it, the first a proof of `nb.ucan`): such a revocation would have no effect on any chain,
 * so it is not recorded. An upstream principal names its path in `nb.proof` (storacha's
 * `ucan/revoke` caveat).
 */
export class UnrelatedRevocation extends TlogFailure {
  override readonly name = 'UnrelatedRevocation' as const
}

/**
 * The principal (`with`) already has its cap of revocation records (`--revocations-per-scope`);
 * nothing was recorded. Revoking a UCAN it already revoked is still answered.
 */
export class TooManyRevocations extends TlogFailure {
  override readonly name = 'TooManyRevocations' as const
}

/** Any failure a `ucan/revoke` can return. */
export type RevokeFailure =
  | InvalidAudience
  | InvalidSignature
  | Expired
  | NotValidBefore
  | InvalidExpiry
  | InvalidCapability
  | Unauthorized
  | Revoked
  | UCANNotFound
  | UnrelatedRevocation
  | TooManyRevocations
  | RateLimited
  | ProofGraphFailure
  | StorageFull
  | StorageFailed
  | LeaseHeld
  | LeaseLost
  | DatabaseUnavailable
  | InternalError

/** Any failure a `tlog/create` can return: those of `tlog/append` except the entry's and the replay guard's. */
export type CreateFailure = Exclude<AppendFailure, InvalidData | EntryTooLarge | TooManyPendingInvocations | InvocationPending>

// Refusals by the log service (log-service.ts LogService): it rejects with an Error whose
// `name` is one of these, and the client gets that name, never InternalError.

/** The space's log cannot be served: its stored state is damaged (the operator must restore it; see /healthz). */
export class LogUnavailable extends TlogFailure {
  override readonly name = 'LogUnavailable' as const
}

/** The service has as many logs open as it may and all are busy; nothing was done. Retry in a second or so. */
export class TooManyOpenLogs extends TlogFailure {
  override readonly name = 'TooManyOpenLogs' as const
}

/** This client may not create another log now (its address's creation rate, or the service's total); nothing was created. */
export class LogCreationLimited extends TlogFailure {
  override readonly name = 'LogCreationLimited' as const
}

/** The space's log holds its maximum number of entries (`--max-log-entries`); nothing was appended. Only this space is refused. */
export class LogFull extends TlogFailure {
  override readonly name = 'LogFull' as const
}

/** Too many of this log's entries are waiting to be integrated; nothing was appended. Retry in a second or so. */
export class Pushback extends TlogFailure {
  override readonly name = 'Pushback' as const
}

/**
 * The service's storage is full (ENOSPC, a disk quota, a database that cannot grow: issue 15 item
 * 1); nothing was appended and nothing half-written is served. Retry once the operator has freed
 * space (`/healthz` answers 503 `storage: StorageFull` meanwhile); no restart is needed.
 */
export class StorageFull extends TlogFailure {
  override readonly name = 'StorageFull' as const
}

/**
 * Too many of this log's checkpoints are waiting for their upload to its Storacha space
 * (`--upload-backlog-max`: Storacha down, or the space or delegation refused); nothing was appended
 * and the invocation is unused. Only this log is refused. The message ends `retry after <s> s`
 * (when its next upload is attempted); an append with a fresh delegation makes the uploads due at once.
 */
export class UploadBacklogFull extends TlogFailure {
  override readonly name = 'UploadBacklogFull' as const
}

/**
 * A write or fsync of the service's storage failed (issue 15 item 2: EIO, a read-only filesystem,
 * SQLITE_IOERR): the space's log stopped (it is reopened from its last committed state at the next
 * request for it; other spaces are not affected), or the replay guard could not record the answer.
 * Nothing was acknowledged; the entry may have been sequenced. A retry works once the fault is gone
 * (the same invocation gets its first answer if it had one, never a second append).
 */
export class StorageFailed extends TlogFailure {
  override readonly name = 'StorageFailed' as const
}

/**
 * With the PostgreSQL backend (several instances on one database, docs/storage.md): this instance
 * lost the log's lease to another one while appending (fencing); nothing of the refused batch is
 * visible and nothing was acknowledged. Retry: the next request reopens the log.
 */
export class LeaseLost extends TlogFailure {
  override readonly name = 'LeaseLost' as const
}

/** With the PostgreSQL backend: another instance holds this log's lease; nothing ran. Retry later (the message says when). */
export class LeaseHeld extends TlogFailure {
  override readonly name = 'LeaseHeld' as const
}

/** With the PostgreSQL backend: the database did not answer; nothing was acknowledged. Retry later. */
export class DatabaseUnavailable extends TlogFailure {
  override readonly name = 'DatabaseUnavailable' as const
}

/** A refusal by the log service, passed to the client by name. */
export type LogRefusal = LogUnavailable | TooManyOpenLogs | LogCreationLimited | LogFull | Pushback | StorageFull | StorageFailed | UploadBacklogFull | LeaseLost | LeaseHeld | DatabaseUnavailable

const LOG_REFUSALS: Record<string, new (message: string) => LogRefusal> = {
  LogUnavailable,
  TooManyOpenLogs,
  LogCreationLimited,
  LogFull,
  Pushback,
  StorageFull,
  UploadBacklogFull,
  StorageFailed,
  LeaseLost,
  LeaseHeld,
  DatabaseUnavailable,
}

/**
 * The named failure for a log service rejection (or a stored `{ name, message }`) whose `name` is a
 * {@link LogRefusal}'s, or {@link StorageFull} for a store's error whose code (or its cause's) says
 * the disk is full (src/storage/storage-full.ts: e.g. the replay guard's SQLITE_FULL, or a
 * `StorageFailed` caused by ENOSPC), or {@link StorageFailed} for one whose code says a write or
 * fsync failed (src/storage/storage-failed.ts: EIO, EROFS, SQLITE_IOERR*); undefined for anything
 * else (which stays InternalError).
 */
export function logRefusal(cause: unknown): LogRefusal | undefined {
  const full = storageFullCode(cause)
  if (full !== undefined) return new StorageFull(storageFullMessage(full))
  const name = (cause as { name?: unknown } | null)?.name
  const make = typeof name === 'string' && Object.hasOwn(LOG_REFUSALS, name) ? LOG_REFUSALS[name] : undefined
  if (make) return new make(truncate(String((cause as { message?: unknown }).message ?? name)))
  // The PostgreSQL replay guard and revocation index pass the driver's errors through.
  if (isDatabaseUnavailable(cause)) return new DatabaseUnavailable('the database did not answer; retry later')
  const failed = storageFailedCode(cause)
  return failed === undefined ? undefined : new StorageFailed(`a write of the service's storage failed (${failed}); retry once the operator has fixed it`)
}
