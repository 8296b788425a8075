// A throwaway PostgreSQL server on loopback for the benchmarks (bench/instances.js): Debian's
// `postgresql` package (scripts/ensure-postgres.sh installs it when missing), `initdb` into a temp
// dir, `pg_ctl` on a free port; as the `postgres` user when we are root (PostgreSQL refuses root).
// Unlike the tests' server (test/helpers/postgres.ts, fsync off to spare the shared disk), this one
// keeps PostgreSQL's durable defaults — fsync, synchronous_commit and full_page_writes on — so the
// figures include the cost of a commit that survives a power loss. Nothing here is a test.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { chown, mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'

const TICK = 100 // clock ticks per second of /proc/<pid>/stat (Linux USER_HZ)

/** The directory of initdb and pg_ctl: UCANLOG_PG_BINDIR, PATH, or the newest /usr/lib/postgresql/<v>/bin. */
function binDir() {
  const candidates = [process.env.UCANLOG_PG_BINDIR, ...(process.env.PATH ?? '').split(':')]
  const found = candidates.find((d) => d && existsSync(join(d, 'initdb')) && existsSync(join(d, 'pg_ctl')))
  if (found) return found
  const lib = '/usr/lib/postgresql'
  const v = existsSync(lib) ? readdirSync(lib).filter((x) => existsSync(join(lib, x, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))[0] : undefined
  if (v) return join(lib, v, 'bin')
  throw new Error('PostgreSQL server binaries not found: run scripts/ensure-postgres.sh or set UCANLOG_PG_BINDIR')
}

/** Runs `bin args` (as `user` when given); rejects with its output on a non-zero exit. */
function exec(bin, args, user) {
  const [cmd, argv] = user ? ['runuser', ['-u', user, '--', bin, ...args]] : [bin, args]
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${bin} exited ${code}: ${out}`))))
  })
}

async function freePort() {
  const s = createServer()
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok))
  const { port } = s.address()
  await new Promise((ok) => s.close(ok))
  return port
}

/** utime + stime (+ the reaped children's, with `children`) of one process, ms; 0 when it is gone. */
function cpuOf(pid, children = false) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0)
    return (ticks * 1000) / TICK
  } catch {
    return 0
  }
}

/**
 * Starts PostgreSQL (a few seconds). Resolves { url, database(name), cpuMs(), walBytes(), writeTransactions(), stop() }:
 * cpuMs() is the CPU, ms, the whole server has used so far (the postmaster, its live backends and
 * background processes, and every exited one: their time is in the postmaster's reaped-children
 * counters); walBytes() the WAL position in bytes; writeTransactions() the transaction id counter
 * (one per transaction that wrote anything, plus the call itself).
 */
export async function startPostgres() {
  const bin = binDir()
  const user = process.getuid?.() === 0 ? 'postgres' : undefined
  const dir = await mkdtemp(join(tmpdir(), 'ucanlog-bench-pg-'))
  if (user) {
    const id = (flag) => Number(spawnSync('id', [flag, user], { encoding: 'utf8' }).stdout.trim())
    await chown(dir, id('-u'), id('-g'))
  }
  const data = join(dir, 'data')
  await exec(join(bin, 'initdb'), ['-D', data, '-U', 'ucanlog', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], user)
  const port = await freePort()
  const opts = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c max_connections=200`
  await exec(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-o', opts, 'start'], user)
  const url = `postgres://ucanlog@127.0.0.1:${port}/postgres`
  const postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  const one = async (sql) => (await admin.query(sql)).rows[0]
  let stopped = false
  const stopSync = () => {
    if (stopped) return
    stopped = true
    const args = [join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop']
    if (user) spawnSync('runuser', ['-u', user, '--', ...args], { stdio: 'ignore' })
    else spawnSync(args[0], args.slice(1), { stdio: 'ignore' })
  }
  process.once('exit', stopSync)
  const settings = await admin.query(`SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'server_version')`)
  return {
    url,
    settings: Object.fromEntries(settings.rows.map((r) => [r.name, r.setting])),
    async database(name) {
      await admin.query(`CREATE DATABASE ${name}`)
      return `postgres://ucanlog@127.0.0.1:${port}/${name}`
    },
    cpuMs() {
      let ms = cpuOf(postmaster, true)
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid)) continue
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
          if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster) ms += cpuOf(pid)
        } catch {}
      }
      return ms
    },
    /** Size of database `name` on disk, bytes. */
    async databaseBytes(name) {
      return Number((await admin.query('SELECT pg_database_size($1) AS b', [name])).rows[0].b)
    },
    async walBytes() {
      return Number((await one(`SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS b`)).b)
    },
    async writeTransactions() {
      return Number((await one('SELECT pg_current_xact_id()::text AS x')).x)
    },
    async stop() {
      await admin.end().catch(() => {})
      stopSync()
      process.removeListener('exit', stopSync)
      await rm(dir, { recursive: true, force: true })
    },
  }
}
