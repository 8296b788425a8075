/** `ucanlog db migrate`: applies the PostgreSQL schema migrations (what `serve` does at start with a database). */
import { Command } from 'commander'
import { openDatabase, redactDatabaseUrl } from '../server/database.js'
import { DEFAULT_CONFIG } from '../server/config.js'
import { ExitCode, UsageError } from './exit-codes.js'

/**
 * `ucanlog db migrate [--database-url URL]` (default `UCANLOG_DATABASE_URL`): applies every schema
 * step not yet recorded, safe while instances run or start (src/storage/postgres/migrate.ts), and
 * prints the steps applied and skipped (`--json`: `{ database, applied, skipped }`, the URL without
 * its password). Exit 4 with DatabaseUnavailable when the database cannot be reached.
 */
export function dbCommand(): Command {
  const db = new Command('db').description('Manage the PostgreSQL database of several ucanlog instances.')
  db.command('migrate')
    .description('Apply the pending schema migrations (serve applies them at start too); safe while other instances run.')
    .option('--database-url <URL>', 'PostgreSQL URL (env UCANLOG_DATABASE_URL); never printed with its password')
    .option('--json', 'print {"database","applied","skipped"} as JSON')
    .action(async (o: { databaseUrl?: string; json?: boolean }) => {
      const url = o.databaseUrl ?? process.env.UCANLOG_DATABASE_URL ?? ''
      if (url === '') throw new UsageError('no database: pass --database-url <URL> or set UCANLOG_DATABASE_URL')
      const database = await openDatabase({ databaseUrl: url, databasePoolMax: 2, databaseTimeoutMs: DEFAULT_CONFIG.databaseTimeoutMs }).catch((err: unknown) => {
        if ((err as Error).name === 'DatabaseUnavailable') Object.assign(err as object, { exitCode: ExitCode.Unreachable })
        throw err
      })
      try {
        const { applied, skipped } = database.migrations
        if (o.json) process.stdout.write(JSON.stringify({ database: redactDatabaseUrl(url), applied, skipped }) + '\n')
        else process.stdout.write(`${database.url}: ${applied.length} migration(s) applied${applied.length ? ` (${applied.join(', ')})` : ''}, ${skipped.length} already applied\n`)
      } finally {
        await database.close()
      }
    })
  return db
}
