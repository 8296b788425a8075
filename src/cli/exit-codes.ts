/**
 * The exit codes of every `ucanlog` command and the errors that carry them (issue 12 item 5): 0 ok,
 * 1 usage or any other error, 2 refused by the service, 3 verification failed, 4 unreachable, 5 a
 * log misbehaved (`ucanlog monitor`, issue 13). An
 * error's code is its `exitCode` property; bin/ucanlog.js prints `ucanlog: <name>: <message>` (or,
 * under `--json`, `{"error":{"name","message","exitCode"}}` on stdout) and exits with it.
 */

import { ExitCode, ServiceUnreachableError, UcanlogError } from '../client/errors.js'
import { isNetworkError, rootCause, unreachable as clientUnreachable } from '../client/http.js'

// One table and one class per concept, in src/client (the CLI meets the client's errors as they are).
export { ExitCode, ServiceRefusedError, ServiceUnreachableError } from '../client/errors.js'
export { isNetworkError } from '../client/http.js'

/** A flag, argument or file the user gave cannot be used (exit 1). */
export class UsageError extends UcanlogError {
  override name = 'UsageError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.Usage, options)
  }
}

/**
 * The error for a service at `url` that could not be reached, naming the URL, the cause and the
 * next step (`--url` / `UCANLOG_URL`).
 */
export function unreachable(url: string, err: unknown): ServiceUnreachableError {
  return clientUnreachable(url, err, 'check --url / UCANLOG_URL')
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
 * URL of its own becomes an {@link ServiceUnreachableError} message; an HTTP refusal names its status.
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
