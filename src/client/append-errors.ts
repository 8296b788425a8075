/**
 * The named errors of a bulk append (append-batch.ts), each carrying the exit code of the CLI
 * contract (docs/cli: 1 usage/input, 2 refused by the service, 3 verification failed, 4 unreachable)
 * and, when the batch had started, the summary of what was done before it stopped.
 */
import type { AppendSummary } from './append-batch.js'

/** Base of the errors below: a name, an exit code, and the batch's summary so far. */
export abstract class AppendBatchError extends Error {
  /** Process exit code of the CLI contract. */
  abstract readonly exitCode: number
  /** What the batch did before it stopped (set by `appendBatch`). */
  summary?: AppendSummary
}

/** The service could not be reached (connection refused or reset, DNS, timeout) after retries. Exit code 4. */
export class UnreachableError extends AppendBatchError {
  override name = 'Unreachable'
  readonly exitCode = 4
}

/** At least one entry was refused by the service (a receipt error, or an HTTP 4xx/5xx answer). Exit code 2. */
export class AppendRefusedError extends AppendBatchError {
  override name = 'AppendRefused'
  readonly exitCode = 2
}

/**
 * A receipt did not verify (its checkpoint, proof or signature; the check's own error is `cause`
 * and its name is kept). Nothing is recorded as its outcome: a rerun with the journal resends the
 * same invocation and checks the answer again. Exit code 3.
 */
export class VerificationFailedError extends AppendBatchError {
  override name = 'VerificationFailed'
  readonly exitCode = 3
}

/** A signed invocation's request would be over the service's body limit: refused locally, nothing sent. Exit code 1. */
export class RequestTooLargeError extends AppendBatchError {
  override name = 'RequestTooLarge'
  readonly exitCode = 1
}
