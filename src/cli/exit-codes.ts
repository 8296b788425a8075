/**
 * The exit codes of every `ucanlog` command and the errors that carry them (issue 12 item 5): 0 ok,
 * 1 usage or any other error, 2 refused by the service, 3 verification failed, 4 unreachable, 5 a
 * log misbehaved (`ucanlog monitor`, issue 13). An
 * error's code is its `exitCode` property; bin/ucanlog.js prints `ucanlog: <name>: <message>` (or,
 * under `--json`, `{"error":{"name","message","exitCode"}}` on stdout) and exits with it.
 */

/** The exit codes, distinct per outcome (README "Exit status"). */
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

/** An error of the CLI that carries its exit code and a name saying what went wrong. */
export class CliError extends Error {
  override name = 'CliError'
  /** The process exit code for this error (see {@link ExitCode}). */
  readonly exitCode: ExitCode
  constructor(message: string, exitCode: ExitCode = ExitCode.Usage, options?: { cause?: unknown }) {
    super(message, options)
    this.exitCode = exitCode
  }
}

/** A flag, argument or file the user gave cannot be used (exit 1). */
export class UsageError extends CliError {
  override name = 'UsageError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.Usage, options)
  }
}

/** The service refused the request (exit 2); `name` is the service's error name when it gave one. */
export class ServiceRefusedError extends CliError {
  override name = 'ServiceRefused'
  constructor(message: string, name?: string, options?: { cause?: unknown }) {
    super(message, ExitCode.Refused, options)
    if (name) this.name = name
  }
}

/** The service at a URL could not be reached (exit 4). */
export class UnreachableError extends CliError {
  override name = 'ServiceUnreachable'
  /** The URL that could not be reached. */
  readonly url: string
  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.Unreachable, options)
    this.url = url
  }
}

/** Error codes of Node and undici meaning the peer could not be reached (never that it answered). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
])

/**
 * Whether `err` is a failure to reach a peer: `fetch`'s `TypeError('fetch failed')` whose cause
 * has one of the network error codes, such an error itself, or an abort by timeout.
 */
export function isNetworkError(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, name } = e as { code?: unknown; name?: unknown }
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true
    if (name === 'TimeoutError' || name === 'ConnectTimeoutError') return true
  }
  return false
}

/** The innermost message of an error chain, e.g. `connect ECONNREFUSED 127.0.0.1:8787` under `fetch failed`. */
function rootCause(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined
  let msg = String(e?.message ?? e)
  for (let depth = 0; e?.cause && depth < 4; depth++) {
    e = e.cause as { message?: string; cause?: unknown }
    if (e?.message) msg = e.message
  }
  return msg
}

/**
 * The error for a service at `url` that could not be reached, naming the URL, the cause and the
 * next step.
 */
export function unreachable(url: string, err: unknown): UnreachableError {
  return new UnreachableError(
    url,
    `cannot reach the service at ${url} (${rootCause(err)}); is \`ucanlog serve\` running there? check --url / UCANLOG_URL`,
    { cause: err },
  )
}

/**
 * The exit code for any error: its own `exitCode` when it carries one (1..255: one of
 * {@link ExitCode}, or e.g. 130 for an append interrupted by SIGINT), 4 for a network failure, 2
 * for an HTTP refusal (an error with a `status` of 400..599, as ucanto's HTTP channel throws), else 1.
 */
export function exitCodeOf(err: unknown): number {
  const own = (err as { exitCode?: unknown } | undefined)?.exitCode
  if (typeof own === 'number' && Number.isInteger(own) && own >= 1 && own <= 255) return own
  if (isNetworkError(err)) return ExitCode.Unreachable
  const status = (err as { status?: unknown } | undefined)?.status
  if (typeof status === 'number' && status >= 400 && status <= 599) return ExitCode.Refused
  return ExitCode.Usage
}

/**
 * What the CLI reports for an error: its name, message and exit code. A network failure without a
 * URL of its own becomes an {@link UnreachableError} message; an HTTP refusal names its status.
 */
export function describeError(err: unknown): { name: string; message: string; exitCode: number } {
  const exitCode = exitCodeOf(err)
  const e = err as { name?: unknown; message?: unknown; exitCode?: unknown; status?: unknown } | undefined
  let message = typeof e?.message === 'string' ? e.message : String(err)
  let name = typeof e?.name === 'string' && e.name !== 'Error' && e.name !== 'TypeError' ? e.name : 'Error'
  if (e?.exitCode === undefined && exitCode === ExitCode.Unreachable) {
    name = 'ServiceUnreachable'
    message = `cannot reach the service (${rootCause(err)}); is \`ucanlog serve\` running there? check --url / UCANLOG_URL`
  } else if (e?.exitCode === undefined && exitCode === ExitCode.Refused) {
    name = 'ServiceRefused'
    message = `the service answered HTTP ${String(e?.status)}: ${message}`
  }
  return { name, message, exitCode }
}

/** The "Exit status" section every command's `--help` ends with: codes 0..4, and `extra`'s command-specific lines (which may add 5). */
export function exitStatusHelp(extra: Partial<Record<ExitCode, string>> = {}): string {
  const lines: Partial<Record<ExitCode, string>> = {
    0: 'success',
    1: 'usage error (a flag missing or malformed, a file unreadable or refused) or any other error',
    2: 'refused by the service (a receipt error, or an HTTP 4xx/5xx answer)',
    3: 'verification failed (a signature, proof, consistency or audit check)',
    4: 'the service could not be reached (connection refused, DNS, timeout)',
    ...extra,
  }
  return '\nExit status:\n' + (Object.entries(lines) as [string, string][]).map(([c, t]) => `  ${c}  ${t}\n`).join('')
}
