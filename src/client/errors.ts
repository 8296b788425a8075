/**
 * The named errors `ucanlog/client` throws (docs/client.md "Errors") and the exit codes of the
 * `ucanlog` CLI they carry: one class per concept, shared by the library and the CLI (src/cli
 * imports them from here; src/client never imports src/cli). Each has a stable `name` to branch on
 * and an `exitCode`: the status `ucanlog` exits with when the CLI meets it.
 */
import type { FailureJSON } from '../ucan/errors.js'

/** The exit codes of every `ucanlog` command, distinct per outcome (README "Exit status", docs/client.md "Errors"). */
export const ExitCode = {
  /** Success. */
  Ok: 0,
  /** A usage error (a flag missing or malformed, a file unreadable) or any other error. */
  Usage: 1,
  /** The service answered with a refusal: a receipt error, or an HTTP 4xx/5xx status. */
  Refused: 2,
  /** A signature, proof, consistency or audit check failed. */
  VerificationFailed: 3,
  /** The service could not be reached: connection refused, DNS failure, timeout. */
  Unreachable: 4,
  /** `ucanlog monitor` caught a log misbehaving: two signed checkpoints that contradict each other (fork, split view, rollback). */
  LogMisbehaved: 5,
} as const

/** One of {@link ExitCode}'s values. */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

/** Base of the client's named errors: a message saying what to do next, a `name`, and the CLI `exitCode`. */
export class UcanlogError extends Error {
  override name = 'UcanlogError'
  /** The CLI exit status for this error (one of {@link ExitCode}). */
  readonly exitCode: ExitCode
  constructor(message: string, exitCode: ExitCode = ExitCode.Usage, options?: { cause?: unknown }) {
    super(message, options)
    this.exitCode = exitCode
  }
}

/** A key text that is not an Ed25519 key in the ucanto format (`ucanlog key create`, `storacha key create`). The message never holds the text. Exit 1. */
export class InvalidKeyError extends UcanlogError {
  override name = 'InvalidKey' as const
}

/**
 * A delegation text that is not a UCAN delegation in either accepted string form (docs/wire.md
 * `nb.delegation`), or that breaks its bounds. The message says why, never echoing the text. Exit 1.
 */
export class InvalidDelegationError extends UcanlogError {
  override name = 'InvalidDelegation' as const
  /** The parser's own failure name: `InvalidDelegation`, `DuplicateProof`, `ProofCycle` or `ProofGraphTooLarge`. */
  readonly reason: string
  constructor(message: string, reason = 'InvalidDelegation') {
    super(message, ExitCode.Usage)
    this.reason = reason
  }
}

/**
 * The service refused: a receipt whose `out` is `{ error }` (its `name` is this error's `name`:
 * `Unauthorized`, `Revoked`, `EntryTooLarge`, `RateLimited`, … — docs/wire.md lists them), or an
 * HTTP refusal (4xx/5xx: `name` is `HTTPError`, `status` the HTTP status). Exit 2.
 */
export class ServiceRefusedError extends UcanlogError {
  override name: string
  /** The HTTP status when the refusal was an HTTP one; undefined for a receipt error. */
  readonly status: number | undefined
  constructor(failure: FailureJSON, status?: number, options?: { cause?: unknown }) {
    super(failure.message, ExitCode.Refused, options)
    this.name = failure.name
    this.status = status
  }
}

/**
 * The service (or another URL: a witness list) could not be reached: connection refused, DNS
 * failure, reset or timeout, after any retries. The message names the URL and the next step. Exit 4.
 */
export class ServiceUnreachableError extends UcanlogError {
  override name = 'ServiceUnreachable' as const
  /** The URL that could not be reached, when known. */
  readonly url: string | undefined
  constructor(message: string, options?: { cause?: unknown; url?: string | URL }) {
    super(message, ExitCode.Unreachable, options)
    this.url = options?.url === undefined ? undefined : String(options.url)
  }
}

/** The service answered something that is not what docs/wire.md says it answers (a malformed `/did`, `/head` or receipt). Exit 2 (its answer is unusable; nothing was verified against it). */
export class UnexpectedAnswerError extends UcanlogError {
  override name = 'UnexpectedAnswer' as const
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.Refused, options)
  }
}

/**
 * A bulk append (append-batch.ts) in which at least one entry was refused by the service (a
 * receipt error, or an HTTP 4xx/5xx answer); each refusal is in the batch's summary. Exit 2.
 */
export class AppendRefusedError extends ServiceRefusedError {
  constructor(message: string) {
    super({ name: 'AppendRefused', message })
  }
}

/** A signed invocation's request would be over the service's body limit: refused locally, nothing sent. Exit 1. */
export class RequestTooLargeError extends UcanlogError {
  override name = 'RequestTooLarge' as const
}
