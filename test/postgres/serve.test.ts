/**
 * `ucanlog serve` (the built CLI, a real process) keeping its logs in PostgreSQL: appends through
 * the client, kill -9 mid-load, a restart on the same database (the new process takes the log's
 * write lease once the dead one's has expired), more appends; every acknowledged entry is at its
 * acknowledged index, every checkpoint a client saw is consistent with the final one, the audit
 * passes, and the tiles are served from the database (the data directory holds no log files).
 * The database URL's password is never printed (by serve after its start-up lines, nor by
 * `ucanlog db migrate`).
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { checkTree, decodeBase64, entryBundlePath, parseEntryBundle, proveTree, tileHashReader, tilePath } from '../../src/tlog/index.js'
import type { AppendResult } from '../../src/ucan/wire.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { REPO, spawnCli, spawnServe } from '../e2e/helpers.js'
import { servedLog } from '../e2e/read-helpers.js'
import { type PostgresServer, startPostgres } from '../helpers/postgres.js'

const PASSWORD = 'pw-never-printed-7f3a'

let server: PostgresServer
const children: ChildProcess[] = []
beforeAll(async () => {
  server = await startPostgres()
}, 60_000)
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL')
  await server?.stop()
})

/** Runs `ucanlog serve` on `dataDir` with its logs in `databaseUrl`; collects everything it prints. */
async function serve(dataDir: string, databaseUrl: string, printed: string[]): Promise<{ url: string; did: string; child: ChildProcess }> {
  const r = await spawnServe(
    ['--data', dataDir, '--port', '0', '--log-level', 'info', '--witness-policy', join(REPO, 'witness_policy.txt'), '--database-lease', '1000'],
    'pipe',
    { env: { UCANLOG_DATABASE_URL: databaseUrl } },
  )
  children.push(r.child)
  r.child.stdout!.on('data', (d: Buffer) => printed.push(d.toString()))
  r.child.stderr!.on('data', (d: Buffer) => printed.push(d.toString()))
  return r
}

describe('serve on PostgreSQL: kill -9 mid-load, restart, append more', () => {
  it('keeps every acknowledged entry at its index, serves the tiles from the database, and the audit passes', async () => {
    // Trust authentication accepts any password: the URL carries one only to show it is never printed.
    const plain = new URL(await server.database())
    const url = new URL(plain)
    url.password = PASSWORD
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-pg-serve-'))
    const printed: string[] = []
    try {
      const space = await generateKey()
      const agent = await generateKey()
      const spaceToAgent = await delegateSpaceToAgent({ space, agent })
      const acked = new Map<number, { entry: string; r: AppendResult }>()
      let sent = 0
      const load = async (base: string, did: string, count: number | undefined, signal: { stop: boolean }) => {
        const conn = connect(`${base}/rpc`, did as API.DID)
        const worker = async () => {
          while (!signal.stop && (count === undefined || sent < count)) {
            const entry = `pg entry ${sent++}`
            const inv = await appendInvocation({ agent, service: did as API.DID, space: space.did(), entry: new TextEncoder().encode(entry), spaceToAgent })
            let out
            try {
              out = (await conn.execute(inv))[0]!.out as { ok?: AppendResult }
            } catch {
              return // the server died under us: this append was never acknowledged
            }
            if (!out.ok) throw new Error(`append refused: ${JSON.stringify(out)}`)
            acked.set(out.ok.index, { entry, r: out.ok })
          }
        }
        await Promise.all(Array.from({ length: 16 }, worker))
      }

      // Phase 1: load, then SIGKILL while appends are in flight (the lease stays until it expires).
      const first = await serve(dataDir, url.toString(), printed)
      const signal = { stop: false }
      const running = load(first.url, first.did, undefined, signal)
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (acked.size >= 100) {
            clearInterval(t)
            resolve()
          }
        }, 5)
      })
      first.child.kill('SIGKILL')
      signal.stop = true
      await running
      const ackedBeforeKill = acked.size
      expect(ackedBeforeKill).toBeGreaterThanOrEqual(100)

      // Phase 2: restart on the same database; the log opens once the dead holder's lease expired.
      const second = await serve(dataDir, url.toString(), printed)
      await load(second.url, second.did, sent + 60, { stop: false })
      expect(acked.size).toBe(ackedBeforeKill + 60)

      // /healthz reports the database.
      const health = await fetch(`${second.url}/healthz`)
      expect(health.status).toBe(200)
      expect(await health.json()).toEqual({ status: 'ok', database: 'ok' })

      // The audit of what the second instance serves; every acknowledged entry where its receipt said.
      const served = await servedLog(second.url, space.did())
      const { fetchFile } = served
      const report = await auditLog(served)
      expect(report.size).toBeGreaterThanOrEqual(Math.max(...acked.keys()) + 1)
      const bundles = new Map<number, Uint8Array[]>()
      for (const [index, { entry }] of acked) {
        const n = Math.floor(index / 256)
        if (!bundles.has(n)) bundles.set(n, parseEntryBundle((await fetchFile(entryBundlePath(n, Math.min(256, report.size - n * 256))))!))
        expect(new TextDecoder().decode(bundles.get(n)![index % 256]), `entry at ${index}`).toBe(entry)
      }
      const reader = tileHashReader(report.size, report.rootHash, {
        readTiles: (tiles) => Promise.all(tiles.map(async (t) => (await fetchFile(tilePath(t)))!)),
      })
      const seen = new Map<number, string>()
      for (const { r } of acked.values()) seen.set(r.treeSize, r.rootHash)
      for (const [size, root] of seen) {
        expect(size).toBeLessThanOrEqual(report.size)
        checkTree(await proveTree(report.size, size, reader), report.size, report.rootHash, size, decodeBase64(root))
      }
      second.child.kill('SIGTERM')
      await new Promise((ok) => second.child.once('exit', ok))

      // The tiles came from the database: the data directory holds keys and local state, no log files.
      const local = await readdir(dataDir)
      expect(local).not.toContain('logs')
      expect(local).not.toContain('cars')
      expect(local).not.toContain('revocations')
      const pool = new pg.Pool({ connectionString: plain.toString(), max: 1 })
      try {
        const files = await pool.query('SELECT count(*)::int AS n FROM log_files WHERE log_id = $1 AND path = $2', [space.did(), tilePath({ level: 0, index: 0, width: Math.min(256, report.size) })])
        expect(files.rows[0].n).toBe(1)
        const leases = await pool.query('SELECT token::int AS token FROM log_leases WHERE log_id = $1', [space.did()])
        expect(leases.rows[0].token).toBeGreaterThanOrEqual(2) // taken again after the kill
        const cars = await pool.query('SELECT max(tree_size)::int AS n FROM log_cars WHERE log_id = $1', [space.did()])
        expect(cars.rows[0].n).toBe(report.size)
      } finally {
        await pool.end()
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
})
