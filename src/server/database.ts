/**
 * The service's PostgreSQL connection (issue 14; docs/storage.md, PostgreSQL): the pool every
 * PostgreSQL store takes (they never create one), made from `--database-url` /
 * `UCANLOG_DATABASE_URL` with `--database-pool-max` and `--database-timeout`, with the schema
 * migrations of src/server/migrations.ts applied before anything is served, and the health check
 * `/healthz` reports. The URL's password is never logged or shown: {@link redactDatabaseUrl}.
 */
import pg from 'pg'
import { DatabaseUnavailableError, isDatabaseUnavailable, namedDatabaseError } from '../storage/postgres/errors.js'
import { migrate, type MigrateResult, type MigrationStep } from '../storage/postgres/migrate.js'
import { ConfigError } from './config.js'
export { DEFAULT_DATABASE_POOL_MAX, DEFAULT_DATABASE_TIMEOUT_MS } from './config.js'
import { MIGRATIONS } from './migrations.js'

/** How long one health check's answer is reused, ms: `/healthz` costs at most one query per this. */
export const HEALTH_CHECK_REUSE_MS = 1000

/** `url` with its password replaced by `***` (and nothing else changed), for logs and messages; `(invalid URL)` when it does not parse. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(invalid URL)'
  }
}

/** What the database connection needs of the service's configuration. */
export interface DatabaseConfig {
  databaseUrl: string
  databasePoolMax: number
  databaseTimeoutMs: number
  /**
   * The logs' write lease, ms (`--database-lease`): a session idle inside a transaction this long is
   * ended by the server (`idle_in_transaction_session_timeout`), so a paused or partitioned instance
   * holding a lease row `FOR SHARE` cannot hold off another instance's takeover longer than a lease.
   */
  databaseLeaseMs?: number
}

/** An open database: the pool, its health, and its end. */
export interface Database {
  readonly pool: pg.Pool
  /** The URL without its password. */
  readonly url: string
  /** What the last migration run applied and skipped. */
  readonly migrations: MigrateResult
  /** `ok`, or the name of the error the last check met (e.g. `DatabaseUnavailable`); answers reused for {@link HEALTH_CHECK_REUSE_MS}. */
  health(): Promise<string>
  /** Ends the pool (after the stores using it are closed). Idempotent. */
  close(): Promise<void>
}

/** A pool from the configuration (nothing connected yet). @throws ConfigError for a URL that is not postgres:// or postgresql:// */
export function createPool(c: DatabaseConfig, logger?: { warn(o: object, msg?: string): void }): pg.Pool {
  let u: URL
  try {
    u = new URL(c.databaseUrl)
  } catch {
    throw new ConfigError('--database-url / UCANLOG_DATABASE_URL must be a postgres:// URL')
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new ConfigError(`--database-url / UCANLOG_DATABASE_URL must be a postgres:// URL, got ${JSON.stringify(redactDatabaseUrl(c.databaseUrl))}`)
  }
  const pool = new pg.Pool({
    connectionString: c.databaseUrl,
    max: c.databasePoolMax,
    connectionTimeoutMillis: c.databaseTimeoutMs,
    statement_timeout: c.databaseTimeoutMs,
    ...(c.databaseLeaseMs !== undefined && { idle_in_transaction_session_timeout: c.databaseLeaseMs }),
    idleTimeoutMillis: 30_000,
    application_name: 'ucanlog',
  })
  // An idle connection's failure (the server restarted) is reported here; left unhandled it would end the process.
  pool.on('error', (err) => logger?.warn({ err: namedDatabaseError(err) }, 'idle database connection failed; the pool reconnects'))
  // A connection the server ends while it is checked out between two statements (e.g. after
  // idle_in_transaction_session_timeout, once a paused instance resumes) reports it on the client:
  // without a listener that would end the process. The next statement on it fails and is named.
  pool.on('connect', (client) => client.on('error', (err) => logger?.warn({ err: namedDatabaseError(err) }, 'database connection ended by the server')))
  return pool
}

/**
 * Opens the database: creates the pool and applies every pending schema migration of `steps`
 * (default: every store's, {@link MIGRATIONS}; the standalone witness passes only its own), safe
 * when several instances start at once.
 * @throws ConfigError for a bad URL; DatabaseUnavailableError naming the (redacted) URL when it
 *   cannot be reached; MigrationError naming the failed step.
 */
export async function openDatabase(
  c: DatabaseConfig,
  logger?: { warn(o: object, msg?: string): void; info(o: object, msg?: string): void },
  steps: readonly MigrationStep[] = MIGRATIONS,
): Promise<Database> {
  const pool = createPool(c, logger)
  const url = redactDatabaseUrl(c.databaseUrl)
  let migrations: MigrateResult
  try {
    migrations = await migrate(pool, steps)
  } catch (err) {
    await pool.end().catch(() => {})
    if (isDatabaseUnavailable(err)) {
      const e = new DatabaseUnavailableError(err)
      e.message = `cannot reach the database ${url}: ${e.message}; check --database-url / UCANLOG_DATABASE_URL and that the server is up`
      throw e
    }
    throw err
  }
  if (migrations.applied.length > 0) logger?.info({ database: url, applied: migrations.applied }, 'applied database schema migrations')
  let last: { at: number; answer: Promise<string> } | undefined
  let ended = false
  return {
    pool,
    url,
    migrations,
    health() {
      const now = performance.now()
      if (last && now - last.at < HEALTH_CHECK_REUSE_MS) return last.answer
      const answer = pool.query('SELECT 1').then(
        () => 'ok',
        (err: unknown) => ((namedDatabaseError(err) as Error).name ?? 'Error'),
      )
      last = { at: now, answer }
      return answer
    },
    async close() {
      if (ended) return
      ended = true
      await pool.end()
    },
  }
}
