/**
 * `ucanlog witness …`: the bundled witness run standalone by a witness operator, in litewitness's
 * and witnessctl's spirit (c2sp.org/tlog-witness v1, c2sp.org/tlog-cosignature v1).
 *
 *     ucanlog witness serve     --name <name> --key <file> [--listen host:port] [STATE]
 *     ucanlog witness vkey      --name <name> --key <file>
 *     ucanlog witness add-log   [STATE] --origin <origin>
 *     ucanlog witness add-key   [STATE] --origin <origin> --key <vkey>
 *     ucanlog witness del-key   [STATE] --origin <origin> --key <vkey>
 *     ucanlog witness list-logs [STATE]
 *     ucanlog witness pull-logs [STATE] --source <file|URL> [--verbose]
 *
 * STATE is `--db <file>` (SQLite, default witness.db) or `--database-url <URL>` /
 * `UCANLOG_DATABASE_URL` (PostgreSQL, witness/pg-store.ts: several `witness serve` processes of one
 * witness, sharing its key, on one database; the witness's schema steps are applied at start).
 * `--db` given explicitly wins over the environment variable; with `--database-url` it is refused.
 * The operator commands work on the same state as a running witness (SQLite: WAL, busy timeout).
 * No command removes a log: a re-added log could be shown a split view. To disable a log, delete
 * its keys. This module imports the witness only through its public entry point, witness/index.ts.
 */
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Command } from 'commander'
import { encodeBase64, parseVerifierKey } from '../tlog/index.js'
import { ExitCode, ServiceUnreachableError, isNetworkError } from './exit-codes.js'
import { DEFAULT_CONFIG } from '../server/config.js'
import { openDatabase, type Database } from '../server/database.js'
import { DATABASE_RETRY_AFTER, isDatabaseUnavailable } from '../storage/postgres/errors.js'
import { PgWitnessStore, SqliteWitnessStore, WITNESS_MIGRATIONS, openWitness, parseLogList, pullLogs, witnessApp, witnessVkey, type WitnessStore } from '../../witness/index.js'

/** Default listen address of `witness serve` (litewitness's default). */
export const DEFAULT_WITNESS_LISTEN = 'localhost:7380'
/** Default state file of the witness commands. */
export const DEFAULT_WITNESS_DB = 'witness.db'
/** Request read/write timeout of the standalone witness, ms (litewitness: 5 s). */
export const WITNESS_HTTP_TIMEOUT_MS = 5000
/** How long `pull-logs` waits for a list fetched over HTTP(S), ms. */
export const PULL_TIMEOUT_MS = 30_000

/** Database connections of one `witness serve` process (PostgreSQL state); the operator commands use {@link WITNESS_OPERATOR_POOL_MAX}. */
export const WITNESS_POOL_MAX = DEFAULT_CONFIG.databasePoolMax
/** Database connections of one operator command (add-log, list-logs, …). */
export const WITNESS_OPERATOR_POOL_MAX = 2

/** A bad flag value for a witness command. */
export class WitnessUsageError extends Error {
  override name = 'WitnessUsageError'
}

/** The state flags every witness command but `vkey` takes. */
interface StateFlags {
  db?: string
  databaseUrl?: string
}

/**
 * Where the witness state is: `--database-url`, else `--db` when given, else
 * `UCANLOG_DATABASE_URL`, else the default SQLite file.
 * @throws WitnessUsageError for `--db` together with `--database-url`, or an empty URL.
 */
export function witnessState(o: StateFlags, env: NodeJS.ProcessEnv = process.env): { db: string } | { databaseUrl: string } {
  if (o.databaseUrl !== undefined && o.db !== undefined) throw new WitnessUsageError('pass either --db <file> (SQLite) or --database-url <URL> (PostgreSQL), not both')
  const url = o.databaseUrl ?? (o.db === undefined ? env.UCANLOG_DATABASE_URL : undefined)
  if (url === undefined) return { db: o.db ?? DEFAULT_WITNESS_DB }
  if (url === '') throw new WitnessUsageError('--database-url / UCANLOG_DATABASE_URL is empty; pass a postgres:// URL, or --db <file>')
  return { databaseUrl: url }
}

/**
 * Opens the PostgreSQL state: the pool and the witness's schema steps (WITNESS_MIGRATIONS, applied
 * once whatever the number of processes starting).
 * @throws DatabaseUnavailable (exit code 4) when the database cannot be reached; ConfigError for a bad URL.
 */
async function openPgState(url: string, poolMax: number): Promise<Database> {
  return openDatabase({ databaseUrl: url, databasePoolMax: poolMax, databaseTimeoutMs: DEFAULT_CONFIG.databaseTimeoutMs }, undefined, WITNESS_MIGRATIONS).catch((err: unknown) => {
    if ((err as Error).name === 'DatabaseUnavailable') Object.assign(err as object, { exitCode: ExitCode.Unreachable })
    throw err
  })
}

const DB_HELP = 'the witness state (SQLite file; default witness.db)'
const URL_HELP = 'the witness state in PostgreSQL instead (env UCANLOG_DATABASE_URL): several witness processes may share it; never printed with its password'

/**
 * Parses a listen address: `host:port`, `[v6]:port` or `:port` (all interfaces); port 0..65535.
 * @throws WitnessUsageError otherwise.
 */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(s)
  if (!m || Number(m[3]) > 65535) throw new WitnessUsageError(`--listen must be host:port (e.g. ${DEFAULT_WITNESS_LISTEN}), got ${JSON.stringify(s)}`)
  return { host: m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!), port: Number(m[3]) }
}

/** The `witness` command group. */
export function witnessCommand(): Command {
  const w = new Command('witness').description(
    'Run a c2sp.org/tlog-witness witness (litewitness-compatible) and manage the logs it witnesses.',
  )

  w.command('serve')
    .description('Serve POST /add-checkpoint, the status page (GET /) and GET /metrics. Prints the witness vkey (type 0x04) at start.')
    .requiredOption('--name <name>', 'the witness key name, URL-like (e.g. witness.example.com)')
    .requiredOption('--key <file>', 'the witness key: a raw 32-byte Ed25519 seed, created with mode 0600 if missing')
    .option('--listen <host:port>', 'address to listen on (plain HTTP; terminate TLS in front)', DEFAULT_WITNESS_LISTEN)
    .option('--db <file>', DB_HELP)
    .option('--database-url <URL>', URL_HELP)
    .option('--json', 'print the start-up lines as one JSON object {"vkey","name","url","db","database"}')
    .action(async (o: { name: string; key: string; listen: string; json?: boolean } & StateFlags) => {
      const { host, port } = parseListen(o.listen)
      const state = witnessState(o)
      const database = 'databaseUrl' in state ? await openPgState(state.databaseUrl, WITNESS_POOL_MAX) : undefined
      const opened = await (database
        ? openWitness({ name: o.name, keyFile: o.key, store: new PgWitnessStore(database.pool) })
        : openWitness({ name: o.name, keyFile: o.key, dbFile: (state as { db: string }).db })
      ).catch(async (err: unknown) => {
        await database?.close()
        throw err
      })
      const { witness } = opened
      /** Closes the state (the SQLite file, or the pool). */
      const close = async () => {
        opened.close()
        await database?.close()
      }
      const shownState = database ? `PostgreSQL ${database.url}` : (state as { db: string }).db
      // With PostgreSQL, an unreachable database is 503 + Retry-After (nothing cosigned), not 500.
      const app = witnessApp(witness, database ? { unavailable: (err) => (isDatabaseUnavailable(err) ? DATABASE_RETRY_AFTER : undefined) } : {})
      const server = serve({ fetch: app.fetch, port, hostname: host })
      try {
        await new Promise<void>((ok, fail) => {
          server.once('listening', ok)
          server.once('error', fail)
        })
      } catch (e) {
        await close()
        const inUse = (e as NodeJS.ErrnoException).code === 'EADDRINUSE'
        throw new WitnessUsageError(`cannot listen on ${o.listen}: ${inUse ? 'the port is already in use (EADDRINUSE)' : (e as Error).message}; choose another --listen`)
      }
      const http = server as unknown as { requestTimeout: number; headersTimeout: number }
      http.requestTimeout = WITNESS_HTTP_TIMEOUT_MS
      http.headersTimeout = WITNESS_HTTP_TIMEOUT_MS
      const addr = server.address() as AddressInfo
      const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
      if (o.json) process.stdout.write(JSON.stringify({ vkey: witness.vkey, name: witness.name, url: `http://${shown}:${addr.port}`, db: database ? null : (state as { db: string }).db, database: database?.url ?? null }) + '\n')
      else process.stdout.write(
        `witness vkey: ${witness.vkey}\n` +
          `ucanlog witness ${witness.name} listening on http://${shown}:${addr.port}\n` +
          `  add-checkpoint: POST http://${shown}:${addr.port}/add-checkpoint\n  state: ${shownState}\n`,
      )
      let stopping = false
      const stop = (sig: string) => {
        if (stopping) return
        stopping = true
        if (!o.json) process.stdout.write(`${sig}: stopping\n`)
        server.close(() => void close().finally(() => process.exit(0)))
        ;(server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.()
      }
      process.on('SIGINT', () => stop('SIGINT'))
      process.on('SIGTERM', () => stop('SIGTERM'))
    })

  w.command('vkey')
    .description('Print the witness verifier key (type 0x04) for policies and the witness network, without starting anything.')
    .requiredOption('--name <name>', 'the witness key name')
    .requiredOption('--key <file>', 'the witness key file (32-byte seed)')
    .option('--json', 'print {"vkey"} as JSON')
    .action(async (o: { name: string; key: string; json?: boolean }) => {
      const vkey = await witnessVkey({ name: o.name, keyFile: o.key })
      process.stdout.write(o.json ? JSON.stringify({ vkey }) + '\n' : `${vkey}\n`)
    })

  w.command('add-log')
    .description('Add a log at size 0 (trust on first use); it stays disabled until it has a key (add-key).')
    .option('--db <file>', DB_HELP)
    .option('--database-url <URL>', URL_HELP)
    .requiredOption('--origin <origin>', 'the log origin (first line of its checkpoints)')
    .action((o: StateFlags & { origin: string }) =>
      withStore(witnessState(o), async (s) => {
        if (!(await s.addLog(o.origin))) throw new WitnessUsageError(`log ${JSON.stringify(o.origin)} already exists`)
      }),
    )

  w.command('add-key')
    .description("Add a log's verifier key (Ed25519, type 0x01); warns when the key name differs from the origin.")
    .option('--db <file>', DB_HELP)
    .option('--database-url <URL>', URL_HELP)
    .requiredOption('--origin <origin>', 'the log origin')
    .requiredOption('--key <vkey>', 'the log vkey, <name>+<hex key ID>+<base64>')
    .action((o: StateFlags & { origin: string; key: string }) =>
      withStore(witnessState(o), async (s) => {
        if ((await s.getLog(o.origin)) === undefined) throw new WitnessUsageError(`unknown log ${JSON.stringify(o.origin)}; run add-log first`)
        if (!(await s.addKey(o.origin, o.key))) throw new WitnessUsageError(`log ${JSON.stringify(o.origin)} already has this key`)
        const { name } = parseVerifierKey(o.key)
        if (name !== o.origin) process.stderr.write(`warning: the key name ${JSON.stringify(name)} differs from the origin ${JSON.stringify(o.origin)}\n`)
      }),
    )

  w.command('del-key')
    .description("Remove a log's key. A log without keys is disabled (answered as unknown); logs are never removed.")
    .option('--db <file>', DB_HELP)
    .option('--database-url <URL>', URL_HELP)
    .requiredOption('--origin <origin>', 'the log origin')
    .requiredOption('--key <vkey>', 'the vkey to remove, as list-logs shows it')
    .action((o: StateFlags & { origin: string; key: string }) =>
      withStore(witnessState(o), async (s) => {
        if (!(await s.deleteKey(o.origin, o.key))) throw new WitnessUsageError(`log ${JSON.stringify(o.origin)} has no key ${o.key}`)
      }),
    )

  w.command('list-logs')
    .description('Print every log as a JSON line: origin, size, root_hash (base64), keys.')
    .option('--db <file>', DB_HELP)
    .option('--database-url <URL>', URL_HELP)
    .action((o: StateFlags) =>
      withStore(witnessState(o), async (s) => {
        for (const l of await s.listLogs()) {
          process.stdout.write(JSON.stringify({ origin: l.origin, size: l.treeSize, root_hash: encodeBase64(l.rootHash), keys: l.keys }) + '\n')
        }
      }),
    )

  w.command('pull-logs')
    .description(
      'Add the logs of a witness-network log list (logs/v0) that this witness does not know. Add-only: never changes ' +
        "an existing log's key or removes a log. Quiet unless something is unexpected, for cron.",
    )
    .option('--db <file>', DB_HELP)
    .option('--database-url <URL>', URL_HELP)
    .requiredOption('--source <file|URL>', 'the list: a file, or an http(s) URL (e.g. https://…/logs.txt)')
    .option('--verbose', 'also report added logs and skipped list entries')
    .action(async (o: StateFlags & { source: string; verbose?: boolean }) => {
      const state = witnessState(o)
      const list = parseLogList(await readSource(o.source))
      await withStore(state, async (s) => {
        const r = await pullLogs(s, list)
        for (const m of r.warnings) process.stderr.write(`warning: ${m}\n`)
        if (o.verbose) {
          for (const m of list.skipped) process.stderr.write(`${m}\n`)
          for (const origin of r.added) process.stderr.write(`added ${origin}\n`)
        }
      })
    })
  return w
}

/** Runs `f` on the witness state `state` names (SQLite file or PostgreSQL), closing it after. */
async function withStore(state: ReturnType<typeof witnessState>, f: (s: WitnessStore) => Promise<void>): Promise<void> {
  if ('databaseUrl' in state) {
    const database = await openPgState(state.databaseUrl, WITNESS_OPERATOR_POOL_MAX)
    try {
      await f(new PgWitnessStore(database.pool))
    } finally {
      await database.close()
    }
    return
  }
  const s = new SqliteWitnessStore(state.db)
  try {
    await f(s)
  } finally {
    s.close()
  }
}

async function readSource(source: string): Promise<string> {
  if (/^https?:\/\//i.test(source)) {
    const res = await fetch(source, { signal: AbortSignal.timeout(PULL_TIMEOUT_MS) }).catch((e: Error) => {
      if (isNetworkError(e)) throw new ServiceUnreachableError(`cannot fetch ${source}: ${(e.cause as Error | undefined)?.message ?? e.message}; check the URL and the network, or pass a file`, { cause: e, url: source })
      throw new Error(`cannot fetch ${source}: ${e.message}`)
    })
    if (!res.ok) throw new Error(`cannot fetch ${source}: HTTP ${res.status}`)
    return res.text()
  }
  return readFile(source, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new Error(`cannot read ${source}: ${e.code ?? e.message}`)
  })
}
