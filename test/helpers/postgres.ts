/**
 * A throwaway PostgreSQL server for tests, on loopback: Debian's `postgresql` package (installed by
 * scripts/ensure-postgres.sh from `npm test` when missing), `initdb` into a temp dir, `pg_ctl` on a
 * free port, stopped and deleted by {@link PostgresServer.stop}. Never a mock.
 *
 * PostgreSQL refuses to run as root; when the tests run as root the server runs as the `postgres`
 * user the package creates (through `runuser`), in a temp dir owned by it. The server is started
 * with `fsync=off`: the tests kill ucanlog processes, never the database, and a committed
 * transaction survives the death of its client either way; this spares the shared machine's disk.
 *
 * Binaries are looked up in `UCANLOG_PG_BINDIR`, then on PATH, then in the highest
 * `/usr/lib/postgresql/<version>/bin`.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll } from 'vitest'

/** A running test server: its superuser URL and a way to make one database per test. */
export interface PostgresServer {
  /** `postgres://ucanlog@127.0.0.1:<port>/postgres` (trust authentication, loopback only). */
  readonly url: string
  /** TCP port on 127.0.0.1. */
  readonly port: number
  /** Creates an empty database (name `t<n>` unless given) and returns its URL. */
  database(name?: string): Promise<string>
  /** Stops the server (immediate shutdown, as a crash) and deletes its directory. Idempotent. */
  stop(): Promise<void>
  /** Stops the server (immediate shutdown) keeping its data: the database is gone until {@link resume}. */
  halt(): Promise<void>
  /** Starts a {@link halt}ed server again on the same port with the same data (crash recovery). */
  resume(): Promise<void>
}

const SUPERUSER = 'ucanlog'
let databases = 0

/** Directory holding initdb, pg_ctl and postgres; throws naming scripts/ensure-postgres.sh when none. */
export function postgresBinDir(): string {
  const env = process.env.UCANLOG_PG_BINDIR
  if (env && existsSync(join(env, 'initdb'))) return env
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir
  }
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : []
  versions.sort((a, b) => Number(b) - Number(a))
  if (versions.length > 0) return join(root, versions[0]!, 'bin')
  throw new Error('PostgreSQL server binaries not found: run scripts/ensure-postgres.sh (apt-get install postgresql) or set UCANLOG_PG_BINDIR')
}

/** The user the server runs as when we are root (PostgreSQL refuses root). */
function serverUser(): { name: string; uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  for (const name of ['postgres', 'nobody']) {
    const id = spawnSync('id', ['-u', name], { encoding: 'utf8' })
    const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' })
    if (id.status === 0 && gid.status === 0) return { name, uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) }
  }
  throw new Error('running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as')
}

/** Runs a PostgreSQL binary (as `user` when given); rejects with its output on a non-zero exit. */
function run(bin: string, args: string[], user: string | undefined): Promise<void> {
  const [cmd, argv] = user ? ['runuser', ['-u', user, '--', bin, ...args]] : [bin, args]
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${bin} ${args.join(' ')} exited ${code}:\n${out}`))))
  })
}

/** A port free on 127.0.0.1 right now. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((ok) => server.close(() => ok()))
  return port
}

/**
 * Starts a fresh PostgreSQL server on 127.0.0.1 (a few seconds: initdb + start).
 * @param settings extra `-c name=value` server settings (e.g. `{ max_connections: '50' }`).
 */
export async function startPostgres(settings: Record<string, string> = {}): Promise<PostgresServer> {
  const bin = postgresBinDir()
  const user = serverUser()
  const dir = await mkdtemp(join(tmpdir(), 'ucanlog-pg-'))
  if (user) await chown(dir, user.uid, user.gid)
  const data = join(dir, 'data')
  const log = join(dir, 'server.log')
  await run(join(bin, 'initdb'), ['-D', data, '-U', SUPERUSER, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], user?.name)
  const port = await freePort()
  const options: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dir,
    fsync: 'off',
    full_page_writes: 'off',
    synchronous_commit: 'off',
    max_connections: '200',
    ...settings,
  }
  const opts = [`-p ${port}`, ...Object.entries(options).map(([k, v]) => `-c ${k}=${v}`)].join(' ')
  const start = () => run(join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-w', '-t', '60', '-o', opts, 'start'], user?.name)
  const halt = () => run(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], user?.name)
  try {
    await start()
  } catch (err) {
    const tail = await readFile(log, 'utf8').catch(() => '')
    await rm(dir, { recursive: true, force: true })
    throw new Error(`${(err as Error).message}\n${tail.slice(-2000)}`)
  }
  const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`
  let stopped = false
  const stopSync = (): void => {
    if (stopped) return
    stopped = true
    const args = [join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop']
    if (user) spawnSync('runuser', ['-u', user.name, '--', ...args], { stdio: 'ignore' })
    else spawnSync(args[0]!, args.slice(1), { stdio: 'ignore' })
  }
  // A test process that dies without afterAll must not leave a server behind.
  process.once('exit', stopSync)
  return {
    url,
    port,
    async database(name = `t${++databases}`) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain database name: ${name}`)
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      try {
        await client.query(`CREATE DATABASE ${name}`)
      } finally {
        await client.end()
      }
      return `postgres://${SUPERUSER}@127.0.0.1:${port}/${name}`
    },
    halt,
    resume: start,
    async stop() {
      stopSync()
      process.removeListener('exit', stopSync)
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/**
 * Registers, in the calling test file, a server started in `beforeAll` and stopped (with every pool
 * made through it) in `afterAll`. `pool(url)` makes a pool on `url` (an instance of the service,
 * as far as the database can tell), ended in `afterAll`.
 */
export function usePostgres(): { server(): PostgresServer; pool(url: string, max?: number): pg.Pool } {
  let server: PostgresServer | undefined
  const pools: pg.Pool[] = []
  beforeAll(async () => {
    server = await startPostgres()
  }, 60_000)
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()))
    await server?.stop()
  })
  return {
    server: () => server!,
    pool(url, max = 4) {
      const p = new pg.Pool({ connectionString: url, max })
      pools.push(p)
      return p
    },
  }
}
