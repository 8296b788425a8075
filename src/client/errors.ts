/**
 * The named errors `ucanlog/client` throws (docs/client.md "Errors"). Each has a stable `name` to
 * branch on and an `exitCode`: the status `ucanlog` exits with when the CLI meets it (the shared
 * CLI contract: 1 usage/other, 2 refused by the service, 3 verification failed, 4 unreachable).
 */
import type { FailureJSON } from '../ucan/errors.js'

// The exit codes of the CLI contract (src/cli/exit-codes.ts will name them: ExitCode.Usage = 1,
// ExitCode.Refused = 2, ExitCode.Unreachable = 4).
const EXIT_USAGE = 1
const EXIT_REFUSED = 2
const EXIT_UNREACHABLE = 4

/** A key text that is not an Ed25519 key in the ucanto format (`ucanlog key create`, `storacha key create`). The message never holds the text. CLI exit 1 (usage). */
export class InvalidKeyError extends Error {
  override name = 'InvalidKey' as const
  readonly exitCode = EXIT_USAGE
}

/**
 * A delegation text that is not a UCAN delegation in either accepted string form (docs/wire.md
 * `nb.delegation`), or that breaks its bounds. The message says why, never echoing the text.
 */
export class InvalidDelegationError extends Error {
  override name = 'InvalidDelegation' as const
  /** CLI exit status: 1 (usage). */
  readonly exitCode = EXIT_USAGE
  /** The parser's own failure name: `InvalidDelegation`, `DuplicateProof`, `ProofCycle` or `ProofGraphTooLarge`. */
  readonly reason: string
  constructor(message: string, reason = 'InvalidDelegation') {
    super(message)
    this.reason = reason
  }
}

/**
 * The service refused: a receipt whose `out` is `{ error }` (its `name` is this error's `name`:
 * `Unauthorized`, `Revoked`, `EntryTooLarge`, `RateLimited`, … — docs/wire.md lists them), or an
 * HTTP refusal (4xx/5xx: `name` is `HTTPError`, `status` the HTTP status).
 */
export class ServiceRefusedError extends Error {
  override name: string
  /** CLI exit status: 2 (refused by the service). */
  readonly exitCode = EXIT_REFUSED
  /** The HTTP status when the refusal was an HTTP one; undefined for a receipt error. */
  readonly status: number | undefined
  constructor(failure: FailureJSON, status?: number) {
    super(failure.message)
    this.name = failure.name
    this.status = status
  }
}

/** The service could not be reached: connection refused, DNS failure, reset or timeout. The message names the URL. CLI exit 4 (unreachable). */
export class ServiceUnreachableError extends Error {
  override name = 'ServiceUnreachable' as const
  readonly exitCode = EXIT_UNREACHABLE
}

/** The service answered something that is not what docs/wire.md says it answers (a malformed `/did`, `/head` or receipt). CLI exit 2 (its answer is unusable; nothing was verified against it). */
export class UnexpectedAnswerError extends Error {
  override name = 'UnexpectedAnswer' as const
  readonly exitCode = EXIT_REFUSED
}
