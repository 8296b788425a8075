/** `ucanlog migrate-store --from DATA --to URL`: moves the logs of an embedded-default data directory into PostgreSQL. */
import { stat } from 'node:fs/promises'
import { Command } from 'commander'
import { openDatabase, redactDatabaseUrl } from '../server/database.js'
import { DEFAULT_CONFIG } from '../server/config.js'
import { checkStopped, importLog, type ImportResult, listLocalSpaceLogs, readLocalServiceLog, readLocalSpaceLog } from '../storage/postgres/import-local.js'
import { ExitCode, UsageError } from './exit-codes.js'

/** One log the command could not move: its id and the named error. */
export interface MigrateStoreFailure {
  logId: string
  error: { name: string; message: string }
}

/**
 * Some logs were not moved (each named in the summary with its error, e.g. LogConflict,
 * DataDirInUse); the others were. Exit 1; the summary is already on stdout.
 */
export class LogsRefusedError extends Error {
  override name = 'LogsRefused'
  readonly exitCode = ExitCode.Usage
  constructor(
    failed: MigrateStoreFailure[],
    /** What the command printed (bin/ucanlog.js then names this error on stderr only). */
    readonly summary: { logs: ImportResult[]; failed: MigrateStoreFailure[] },
  ) {
    super(`${failed.length} log(s) not moved: ${failed.map((f) => `${f.logId} (${f.error.name})`).join(', ')}`)
  }
}

/**
 * `ucanlog migrate-store --from <data dir> --to <postgres URL>` (docs/storage.md, "Moving a data
 * directory into PostgreSQL"): applies the schema migrations, then copies every space log (files
 * and CARs) and the revocation log of the STOPPED data directory, one transaction per log
 * (src/storage/postgres/import-local.ts); prints a progress line per log on stderr and a summary on
 * stdout (`--json`: `{ database, logs: ImportResult[], failed: MigrateStoreFailure[] }`). A log
 * the database holds with different content is refused (LogConflict) and the others go on; rerun
 * with the same content, nothing changes. Exit 0 when every log is in the database, 1 when any log
 * was refused ({@link LogsRefusedError}), the data directory is in use (DataDirInUse: nothing
 * written) or on a usage error, 4 (DatabaseUnavailable) when the database cannot be reached.
 */
export function migrateStoreCommand(): Command {
  return new Command('migrate-store')
    .description('Move the logs of a stopped embedded-default data directory (files, CARs, revocation log) into PostgreSQL; idempotent.')
    .requiredOption('--from <DIR>', 'the data directory of the stopped `ucanlog serve` (read, never changed)')
    .option('--to <URL>', 'PostgreSQL URL (env UCANLOG_DATABASE_URL); never printed with its password')
    .option('--json', 'print {"database","logs","failed"} as JSON')
    .action(async (o: { from: string; to?: string; json?: boolean }) => {
      const url = o.to ?? process.env.UCANLOG_DATABASE_URL ?? ''
      if (url === '') throw new UsageError('no database: pass --to <URL> or set UCANLOG_DATABASE_URL')
      const isDir = await stat(o.from).then(
        (s) => s.isDirectory(),
        () => false,
      )
      if (!isDir) throw new UsageError(`--from ${o.from} is not a directory`)
      await checkStopped(o.from)
      const database = await openDatabase({ databaseUrl: url, databasePoolMax: 2, databaseTimeoutMs: DEFAULT_CONFIG.databaseTimeoutMs }).catch((err: unknown) => {
        if ((err as Error).name === 'DatabaseUnavailable') Object.assign(err as object, { exitCode: ExitCode.Unreachable })
        throw err
      })
      const logs: ImportResult[] = []
      const failed: MigrateStoreFailure[] = []
      try {
        const ids = await listLocalSpaceLogs(o.from)
        const readers: [string, () => ReturnType<typeof readLocalSpaceLog>][] = [
          ...ids.map((id): [string, () => ReturnType<typeof readLocalSpaceLog>] => [id, () => readLocalSpaceLog(o.from, id)]),
          ['service:revocations', () => readLocalServiceLog(o.from, 'revocations')],
        ]
        for (const [id, read] of readers) {
          try {
            const local = await read()
            if (local.kind === 'service' && local.files.size === 0) continue
            const r = await importLog(database.pool, local, { leaseMs: DEFAULT_CONFIG.databaseLeaseMs })
            logs.push(r)
            process.stderr.write(`${r.logId}: ${r.outcome} (${r.files} files, ${r.cars} CARs, ${r.bytes} bytes)\n`)
          } catch (err) {
            const e = err as Error
            if (e.name === 'DatabaseUnavailable') throw Object.assign(e, { exitCode: ExitCode.Unreachable })
            failed.push({ logId: id, error: { name: e.name, message: e.message } })
            process.stderr.write(`${id}: refused: ${e.name}: ${e.message}\n`)
          }
        }
      } finally {
        await database.close()
      }
      if (o.json) process.stdout.write(JSON.stringify({ database: redactDatabaseUrl(url), logs, failed }) + '\n')
      else process.stdout.write(`${database.url}: ${logs.filter((l) => l.outcome === 'copied').length} log(s) copied, ${logs.filter((l) => l.outcome === 'unchanged').length} already there, ${failed.length} refused\n`)
      if (failed.length > 0) throw new LogsRefusedError(failed, { logs, failed })
    })
}
