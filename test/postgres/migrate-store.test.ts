/**
 * `ucanlog migrate-store --from DATA --to URL` (issue 14 item 4), all real processes: a
 * `ucanlog serve` on an embedded-default data directory takes appends to two spaces and is stopped;
 * migrate-store moves its logs into PostgreSQL; `ucanlog serve --database-url` with the same keys
 * serves both logs, whose audit (auditLog through HTTP) gives the same size and root hash as before
 * the move; further appends extend the same trees (every checkpoint a receipt showed before the
 * move is consistent with the new one). The revocation log moves too, and a delegation revoked
 * before the move is still refused after it. A rerun with the same content changes nothing; a rerun once
 * the database's logs have grown is refused per log (LogConflict) and writes nothing.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type * as API from '@ucanto/interface'
import { ackedAppends, checkAcked } from '../e2e/acked-appends.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey, revokeInvocation } from '../../src/ucan/index.js'
import { outOf } from '../ucan/helpers.js'
import { REPO, spawnCli, spawnServe } from '../e2e/helpers.js'
import { usePostgres } from '../helpers/postgres.js'
import { servePg, shareKeys } from './serve-helpers.js'

const postgres = usePostgres()
const children: ChildProcess[] = []
afterAll(() => {
  for (const c of children) c.kill('SIGKILL')
})

/** Runs the built CLI to its end: exit code, stdout, stderr. */
async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnCli(args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const code = await new Promise<number | null>((ok) => child.once('exit', ok))
  return { code, stdout, stderr }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((ok) => child.once('exit', ok))
  child.kill('SIGTERM')
  await exited
}

describe('ucanlog migrate-store', () => {
  it('moves two space logs into PostgreSQL: same audit after, appends extend the same trees; rerun idempotent; conflict refused', async () => {
    const url = await postgres.server().database()
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-migrate-from-'))
    const pgDir = await mkdtemp(join(tmpdir(), 'ucanlog-migrate-to-'))
    const printed: string[] = []
    try {
      // 1. The embedded default: two spaces, 20 entries each (more than one checkpoint each).
      const local = await spawnServe(['--data', dataDir, '--port', '0', '--witness-policy', join(REPO, 'witness_policy.txt')], 'ignore')
      children.push(local.child)
      const a = await ackedAppends('moved a')
      const b = await ackedAppends('moved b')
      await a.load(local.url, local.did, 20, { stop: false }, 4)
      await b.load(local.url, local.did, 20, { stop: false }, 4)
      const before = { a: await checkAcked(local.url, a), b: await checkAcked(local.url, b) }
      expect(before.a.size).toBe(20)
      expect(before.b.size).toBe(20)
      // A revocation (the revocation log gets one entry): its delegation must stay revoked after the move.
      const space = await generateKey()
      const agent = await generateKey()
      const revoked = await delegateSpaceToAgent({ space, agent })
      const rpc = (u: string, did: string) => connect(`${u}/rpc`, did as API.DID)
      const [rr] = await rpc(local.url, local.did).execute(revokeInvocation({ issuer: space, service: local.did as API.DID, ucan: revoked }))
      expect(outOf(rr as never).ok).toMatchObject({ index: 0 })
      const revHead = async (u: string) => (await (await fetch(`${u}/revocations/head`)).json()) as { treeSize: number; rootHash: string }
      const revBefore = await revHead(local.url)
      expect(revBefore.treeSize).toBe(1)
      const appendRevoked = async (u: string, did: string) => {
        const inv = await appendInvocation({ agent, service: did as API.DID, space: space.did(), entry: new TextEncoder().encode('revoked'), spaceToAgent: revoked })
        const [r] = await rpc(u, did).execute(inv)
        return outOf(r as never)
      }
      expect((await appendRevoked(local.url, local.did)).error?.name).toBe('Revoked')
      // While the server runs, the data directory is refused: nothing written.
      const busy = await runCli(['migrate-store', '--from', dataDir, '--to', url, '--json'])
      expect(busy.code).toBe(1)
      expect(JSON.parse(busy.stdout)).toMatchObject({ error: { name: 'DataDirInUse', exitCode: 1 } })
      const pool = postgres.pool(url, 1)
      expect((await pool.query("SELECT to_regclass('log_files') AS t")).rows[0].t).toBeNull() // refused before the database was touched
      await stop(local.child)

      // 2. Move it: both logs copied, a progress line each on stderr.
      const moved = await runCli(['migrate-store', '--from', dataDir, '--to', url, '--json'])
      expect(moved.stderr).toContain(`${a.space}: copied`)
      expect(moved.stderr).toContain(`${b.space}: copied`)
      expect(moved.code).toBe(0)
      const out = JSON.parse(moved.stdout) as { logs: { logId: string; outcome: string; cars: number }[]; failed: unknown[] }
      expect(out.failed).toEqual([])
      expect(moved.stderr).toContain('service:revocations: copied')
      expect(out.logs.filter((l) => l.outcome === 'copied').map((l) => l.logId).sort()).toEqual([a.space, b.space, 'service:revocations'].sort())
      for (const l of out.logs) if (l.logId !== 'service:revocations') expect(l.cars).toBeGreaterThan(0)
      // Every CAR of the data directory is in the database at its tree size, with its CID.
      for (const space of [a.space, b.space]) {
        const names = (await readdir(join(dataDir, 'cars', space))).filter((n) => n.endsWith('.car')).sort()
        const rows = await pool.query<{ tree_size: string; car_cid: string }>('SELECT tree_size::text AS tree_size, car_cid FROM log_cars WHERE log_id = $1 ORDER BY log_cars.tree_size', [space])
        expect(rows.rows.map((r) => `${r.tree_size.padStart(16, '0')}-${r.car_cid}.car`)).toEqual(names)
        expect((await pool.query('SELECT count(*)::int AS n FROM log_car_entries WHERE log_id = $1', [space])).rows[0].n).toBeGreaterThan(0)
      }

      // 3. Rerun with the same content: nothing changes.
      const again = await runCli(['migrate-store', '--from', dataDir, '--to', url, '--json'])
      expect(again.code).toBe(0)
      expect((JSON.parse(again.stdout) as { logs: { outcome: string }[] }).logs.map((l) => l.outcome)).toEqual(out.logs.map(() => 'unchanged'))

      // 4. Serve from PostgreSQL with the same keys: the same trees.
      await shareKeys(dataDir, pgDir)
      const served = await servePg(pgDir, url, printed, children)
      expect(served.did).toBe(local.did)
      const after = { a: await checkAcked(served.url, a), b: await checkAcked(served.url, b) }
      expect(after.a.size).toBe(before.a.size)
      expect(Buffer.from(after.a.rootHash).toString('hex')).toBe(Buffer.from(before.a.rootHash).toString('hex'))
      expect(after.b.size).toBe(before.b.size)
      expect(Buffer.from(after.b.rootHash).toString('hex')).toBe(Buffer.from(before.b.rootHash).toString('hex'))
      // The revocation log moved, and the revocation index was rebuilt from it: still Revoked.
      expect(await revHead(served.url)).toMatchObject({ treeSize: revBefore.treeSize, rootHash: revBefore.rootHash })
      expect((await appendRevoked(served.url, served.did)).error?.name).toBe('Revoked')

      // 5. Further appends extend the same trees: every checkpoint acknowledged before the move is
      //    consistent with the new one (checkAcked proves each against the audited tree).
      await a.load(served.url, served.did, 30, { stop: false }, 4)
      await b.load(served.url, served.did, 25, { stop: false }, 4)
      expect((await checkAcked(served.url, a)).size).toBe(30)
      expect((await checkAcked(served.url, b)).size).toBe(25)
      await stop(served.child)

      // 6. The database's logs have grown: a rerun refuses both (LogConflict) and writes nothing.
      const count = async () => (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM log_files')).rows[0]!.n
      const filesBefore = await count()
      const conflict = await runCli(['migrate-store', '--from', dataDir, '--to', url, '--json'])
      expect(conflict.code).toBe(1)
      const refused = JSON.parse(conflict.stdout) as { failed: { logId: string; error: { name: string } }[] }
      expect(refused.failed.map((f) => [f.logId, f.error.name]).sort()).toEqual([
        [a.space, 'LogConflict'],
        [b.space, 'LogConflict'],
      ].sort())
      expect(await count()).toBe(filesBefore)
    } finally {
      await rm(dataDir, { recursive: true, force: true })
      await rm(pgDir, { recursive: true, force: true })
    }
  })
})
