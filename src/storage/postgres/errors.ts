/**
 * Named failures of the PostgreSQL stores that reach clients and operators (issue 14): the database
 * cannot be reached ({@link DatabaseUnavailableError}, 503 + Retry-After at the HTTP edge).
 */

/** Seconds a client is told to wait after {@link DatabaseUnavailableError}. */
export const DATABASE_RETRY_AFTER = 1

/** The database cannot be reached (refused, timed out, shutting down, connection lost); nothing was changed by the failed call. */
export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailable'
  readonly retryAfter = DATABASE_RETRY_AFTER
  /** The driver's or the system's error code (e.g. `ECONNREFUSED`, `57P01`), when known. */
  readonly code: string | undefined
  constructor(cause: unknown) {
    const code = (cause as { code?: unknown } | undefined)?.code
    super(`database unavailable${typeof code === 'string' ? ` (${code})` : ''}: ${cause instanceof Error ? cause.message : String(cause)}`)
    this.code = typeof code === 'string' ? code : undefined
  }
}

/** System error codes of a connection that could not be made or was lost. */
const SYSTEM_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE'])

/**
 * Whether `err` means the database could not be reached (not that a statement failed): a system
 * connection error, a SQLSTATE of class 08 (connection exception) or 57P01–57P03 (shutdown, cannot
 * connect now), 25P03 (a session idle in a transaction ended by the server), or node-postgres's
 * connection timeout / terminated connection.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (err instanceof DatabaseUnavailableError) return true
  const code = (err as { code?: unknown } | undefined)?.code
  // 25P03: the server ended a session idle inside a transaction (idle_in_transaction_session_timeout: a paused instance), rolling it back.
  if (typeof code === 'string' && (SYSTEM_CODES.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code) || code === '25P03')) return true
  const message = err instanceof Error ? err.message : ''
  return /timeout exceeded when trying to connect|Connection terminated|connection timeout|Client has encountered a connection error/i.test(message)
}

/** `err` as a {@link DatabaseUnavailableError} when it means the database is unreachable, else unchanged. */
export function namedDatabaseError(err: unknown): unknown {
  return isDatabaseUnavailable(err) && !(err instanceof DatabaseUnavailableError) ? new DatabaseUnavailableError(err) : err
}
