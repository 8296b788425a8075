/**
 * `ucanlog serve` (the built CLI, a real process) keeping its logs in PostgreSQL: appends through
 * the client, kill -9 mid-load, a restart on the same database (the new process takes the log's
 * write lease once the dead one's has expired), more appends; every acknowledged entry is at its
 * acknowledged index, every checkpoint a client saw is consistent with the final one, the audit
 * passes, and the tiles are served from the database (the data directory holds no log files).
 * The database URL's password is never printed (by serve after its start-up lines, nor by
 * `ucanlog db migrate`). Two instances on one database both run and both accept appends to one log.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { tilePath } from '../../src/tlog/index.js'
import { ackedAppends, checkAcked, killMidLoad } from '../e2e/acked-appends.js'
import { spawnCli } from '../e2e/helpers.js'
import { usePostgres } from '../helpers/postgres.js'
import { servePg, shareKeys } from './serve-helpers.js'

const PASSWORD = 'pw-never-printed-7f3a'

const postgres = usePostgres()
const children: ChildProcess[] = []
afterAll(() => {
  for (const c of children) c.kill('SIGKILL')
})

/** Runs `ucanlog serve` on `dataDir` with its logs in `databaseUrl`; collects everything it prints. */
const serve = (dataDir: string, databaseUrl: string, printed: string[]) => servePg(dataDir, databaseUrl, printed, children)

describe('serve on PostgreSQL: kill -9 mid-load, restart, append more', () => {
  it('keeps every acknowledged entry at its index, serves the tiles from the database, and the audit passes', async () => {
    // Trust authentication accepts any password: the URL carries one only to show it is never printed.
    const plain = new URL(await postgres.server().database())
    const url = new URL(plain)
    url.password = PASSWORD
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-pg-serve-'))
    const printed: string[] = []
    try {
      const appends = await ackedAppends('pg entry')

      // Phase 1: load, then SIGKILL while appends are in flight (the lease stays until it expires).
      const ackedBeforeKill = await killMidLoad(appends, await serve(dataDir, url.toString(), printed), 100)
      expect(ackedBeforeKill).toBeGreaterThanOrEqual(100)

      // Phase 2: restart on the same database; the log opens once the dead holder's lease expired.
      const second = await serve(dataDir, url.toString(), printed)
      await appends.load(second.url, second.did, appends.sent + 60, { stop: false })
      expect(appends.acked.size).toBe(ackedBeforeKill + 60)

      // /healthz reports the database.
      const health = await fetch(`${second.url}/healthz`)
      expect(health.status).toBe(200)
      expect(await health.json()).toEqual({ status: 'ok', database: 'ok' })

      // The audit of what the second instance serves; every acknowledged entry where its receipt
      // said; every checkpoint a client saw consistent with the final one.
      const report = await checkAcked(second.url, appends)
      second.child.kill('SIGTERM')
      await new Promise((ok) => second.child.once('exit', ok))

      // The tiles came from the database: the data directory holds keys and local state, no log files.
      const local = await readdir(dataDir)
      expect(local).not.toContain('logs')
      expect(local).not.toContain('cars')
      expect(local).not.toContain('revocations')
      expect(local).not.toContain('ucan.db') // the replay guard and revocation index are in the database
      expect(local).not.toContain('witness.db') // so is the bundled witness's state
      const pool = postgres.pool(plain.toString(), 1)
      {
        const claims = await pool.query('SELECT count(*)::int AS n, count(outcome)::int AS settled FROM ucan_replay WHERE owner = $1', [appends.space])
        expect(claims.rows[0].settled).toBeGreaterThanOrEqual(appends.acked.size) // every acknowledged append's outcome
        // The bundled witness's latest cosigned size of the log, in the database, is the final checkpoint's.
        const witnessed = await pool.query('SELECT max(tree_size)::int AS n FROM witness_log')
        expect(witnessed.rows[0].n).toBe(report.size)
        const files = await pool.query('SELECT count(*)::int AS n FROM log_files WHERE log_id = $1 AND path = $2', [appends.space, tilePath({ level: 0, index: 0, width: Math.min(256, report.size) })])
        expect(files.rows[0].n).toBe(1)
        const leases = await pool.query('SELECT token::int AS token FROM log_leases WHERE log_id = $1', [appends.space])
        expect(leases.rows[0].token).toBeGreaterThanOrEqual(2) // taken again after the kill
        const cars = await pool.query('SELECT max(tree_size)::int AS n FROM log_cars WHERE log_id = $1', [appends.space])
        expect(cars.rows[0].n).toBe(report.size)
      }
      // `ucanlog db migrate` finds the schema applied (by serve), naming the database redacted.
      const migrate = spawnCli(['db', 'migrate', '--json', '--database-url', url.toString()], { stdio: ['ignore', 'pipe', 'pipe'] })
      migrate.stdout!.on('data', (d: Buffer) => printed.push(d.toString()))
      migrate.stderr!.on('data', (d: Buffer) => printed.push(d.toString()))
      expect(await new Promise((ok) => migrate.once('exit', ok))).toBe(0)
      const migrated = JSON.parse(printed.at(-1)!) as { database: string; applied: string[]; skipped: string[] }
      expect(migrated).toMatchObject({ applied: [], skipped: expect.arrayContaining(['log-0001-files']) })
      expect(migrated.database).toContain(':***@')
      expect(printed.join('')).not.toContain(PASSWORD)
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('runs a second instance on the same database (leases follow use); appends to one log through either are accepted', async () => {
    const url = await postgres.server().database()
    const dirs = [await mkdtemp(join(tmpdir(), 'ucanlog-pg-one-')), await mkdtemp(join(tmpdir(), 'ucanlog-pg-two-'))]
    try {
      const first = await servePg(dirs[0]!, url, [], children, ['--database-idle-release', '100'])
      await shareKeys(dirs[0]!, dirs[1]!)
      // Before leases followed use, this one stopped with LeaseHeld (the revocation log's lease).
      const second = await servePg(dirs[1]!, url, [], children, ['--database-idle-release', '100'])
      expect(second.did).toBe(first.did)
      const appends = await ackedAppends('shared entry')
      await appends.load(first.url, first.did, 20, { stop: false }, 4)
      // The same log through the other instance: it forwards to the first, or takes the log once the first let it go.
      await appends.load(second.url, second.did, 40, { stop: false }, 4)
      await appends.load(first.url, first.did, 60, { stop: false }, 4)
      expect(appends.acked.size).toBe(60)
      expect([...appends.acked.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i))
      // Both serve the same log, the audit passes, every receipt's checkpoint consistent with it.
      const report = await checkAcked(second.url, appends)
      expect(report.size).toBe(60)
      await checkAcked(first.url, appends)
      for (const s of [first, second]) expect((await fetch(`${s.url}/healthz`)).status).toBe(200)
      for (const s of [first, second]) {
        s.child.kill('SIGTERM')
        await new Promise((ok) => s.child.once('exit', ok))
      }
    } finally {
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
    }
  })

  it('refuses an --internal-url that is not http(s) before opening anything, naming the flag', async () => {
    const url = await postgres.server().database()
    const dir = await mkdtemp(join(tmpdir(), 'ucanlog-pg-internal-'))
    try {
      const child = spawnCli(['serve', '--data', dir, '--port', '0', '--internal-url', 'ftp://10.0.0.5:8080'], { stdio: ['ignore', 'pipe', 'pipe'], env: { UCANLOG_DATABASE_URL: url } })
      children.push(child)
      let err = ''
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
      expect(await new Promise((ok) => child.once('exit', ok))).not.toBe(0)
      expect(err).toContain('--internal-url / UCANLOG_INTERNAL_URL must be an http(s) URL')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
