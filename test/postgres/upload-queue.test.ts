/**
 * The Storacha upload queue on PostgreSQL (src/storage/postgres/pg-upload-queue.ts, issue 14 item 3)
 * on a real server: the SQLite queue's contract (groups of a log's oldest pending jobs, a log due
 * when its oldest pending job is, done rows pruned beyond keepDone without changing the status,
 * totals, the backlog bound), and what sharing adds: two queues on two pools — two instances —
 * claiming concurrently upload every row exactly once, oldest first per log, never a row in flight
 * at both; a claim of an instance that stops renewing (the fault injected: `renew: false`, as a dead
 * or paused process) passes to the other once it expires, and the late instance's failure does not
 * overwrite the new holder's outcome; a pack queues its CAR in its own transaction.
 */
import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import { migrate } from '../../src/storage/postgres/migrate.js'
import { PgBackend } from '../../src/storage/postgres/pg-backend.js'
import { PgUploadQueue, type PgUploadQueueOptions } from '../../src/storage/postgres/pg-upload-queue.js'
import { MIGRATIONS } from '../../src/server/migrations.js'
import { StorachaUploader, UploadBacklogFullError } from '../../src/storage/storacha-uploader.js'
import { generateKey } from '../../src/ucan/index.js'
import { usePostgres } from '../helpers/postgres.js'

const postgres = usePostgres()
const down = { name: 'StorachaUnavailable', message: 'down', at: 0 }
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms))
const sizes = (groups: { space: string; treeSize: number }[][]) => groups.map((g) => `${g[0]!.space}:${g.map((j) => j.treeSize).join(',')}`)

/** A fresh database with every schema step; `instance()` gives each caller its own pool (an instance of the service). */
async function database(): Promise<{ url: string; admin: pg.Pool; instance(o?: PgUploadQueueOptions): PgUploadQueue }> {
  const url = await postgres.server().database()
  const admin = postgres.pool(url, 2)
  await migrate(admin, MIGRATIONS)
  return { url, admin, instance: (o = {}) => new PgUploadQueue(postgres.pool(url, 4), o) }
}

/** Stores a (fake) CAR of `space` at `treeSize` in log_cars, as a pack would, and queues it at `now`. */
async function job(admin: pg.Pool, q: PgUploadQueue, space: string, treeSize: number, now = 0): Promise<boolean> {
  await admin.query("INSERT INTO log_logs (log_id, kind) VALUES ($1, 'space') ON CONFLICT DO NOTHING", [space])
  await admin.query('INSERT INTO log_cars (log_id, tree_size, root, car_cid, car, blocks) VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT DO NOTHING', [space, treeSize, `r${treeSize}`, `c${treeSize}`, Buffer.alloc(treeSize, 7)])
  return q.enqueue({ space, treeSize, root: `r${treeSize}`, carFile: '', carCid: `c${treeSize}` }, now)
}

describe('PgUploadQueue: the upload queue contract on PostgreSQL', () => {
  it("a log is due when its oldest pending job is; its group is its oldest pending jobs, at most perLog; at most maxLogs logs; status and totals", async () => {
    const { admin, instance } = await database()
    const q = instance()
    try {
      for (const t of [2, 4, 6, 8, 10]) await job(admin, q, 'a', t)
      expect(await job(admin, q, 'a', 2)).toBe(false) // idempotent
      await job(admin, q, 'b', 3)
      const first = await q.dueGroups(0, 3, 10)
      expect(sizes(first)).toEqual(['a:2,4,6', 'b:3'])
      expect(await q.carSize(first[0]![0]!)).toBe(2)
      expect(await q.readCar(first[0]![1]!)).toEqual(new Uint8Array(4).fill(7))
      // a's oldest three fail (due again at 1000); a new checkpoint is enqueued due at once.
      await q.markFailed('a', [2, 4, 6], down, 1000)
      await job(admin, q, 'a', 12, 50)
      // b is claimed by this instance (not marked yet): not due again, for anyone.
      expect(sizes(await q.dueGroups(100, 3, 10))).toEqual([])
      await q.markDone('b', 3, 100)
      expect(await q.nextDue()).toBe(1000)
      expect(await q.status('a')).toMatchObject({ state: 'failing', nextAttemptAt: 1000, error: { name: 'StorachaUnavailable' }, pendingCheckpoints: 6, latestTreeSize: 12, uploadedTreeSize: 0 })
      expect(await q.totals()).toEqual({ pendingCheckpoints: 6, lagEntries: 12, failingLogs: 1 })
      expect(await q.dueGroups(999, 3, 10)).toEqual([])
      expect(sizes(await q.dueGroups(1000, 10, 10))).toEqual(['a:2,4,6,8,10,12'])
      expect(await q.pendingCount('a')).toBe(6)
      expect(await q.pendingCount('b')).toBe(0)
      await q.markDone('a', [2, 4, 6, 8, 10, 12], 1001)
      expect(await q.status('a')).toMatchObject({ state: 'uploaded', uploadedTreeSize: 12, latestTreeSize: 12, lagEntries: 0, pendingCheckpoints: 0, latestRoot: 'r12' })
      expect(await q.nextDue()).toBeUndefined()
      expect(await q.spaces()).toEqual(['a', 'b'])
      expect(await q.status('nothing')).toBeUndefined()
    } finally {
      await q.close()
    }
  })

  it('keeps only the newest keepDone done rows of each log; the status is unchanged by the pruning; a schedule too far ahead is brought back', async () => {
    const { admin, instance } = await database()
    const q = instance({ keepDone: 3 })
    try {
      for (let t = 1; t <= 50; t++) await job(admin, q, 'a', t)
      for (let t = 1; t <= 40; t++) await q.markDone('a', t, t)
      const count = async (done: boolean) => Number((await admin.query(`SELECT count(*) AS n FROM log_upload_jobs WHERE space = 'a' AND done_at IS ${done ? 'NOT ' : ''}NULL`)).rows[0].n)
      expect(await count(true)).toBe(3)
      expect(await count(false)).toBe(10)
      expect(await q.status('a')).toMatchObject({ state: 'pending', uploadedTreeSize: 40, latestTreeSize: 50, lagEntries: 10, pendingCheckpoints: 10, latestRoot: 'r40' })
      expect(await q.latestTreeSize('a')).toBe(50)
      expect(await q.totals()).toEqual({ pendingCheckpoints: 10, lagEntries: 10, failingLogs: 0 })
      await q.markFailed('a', [41], down, 10_000_000) // not claimed by this instance: nothing recorded
      expect((await q.status('a'))!.state).toBe('pending')
      await admin.query("UPDATE log_upload_jobs SET next_at = 10000000 WHERE space = 'a' AND done_at IS NULL")
      await q.clampNextAt(500)
      expect(await q.nextDue()).toBe(500)
      await q.wake('a', 20)
      expect(await q.nextDue()).toBe(20)
    } finally {
      await q.close()
    }
  })

  it('an attempt that marks only the oldest rows of its group (the rest trimmed by --upload-batch-bytes) gives the rest of its claim up', async () => {
    const { admin, instance } = await database()
    const q = instance({ claimMs: 300 })
    const other = instance({ claimMs: 300 })
    try {
      for (const t of [1, 2, 3, 4]) await job(admin, q, 'a', t)
      expect(sizes(await q.dueGroups(0, 3, 10))).toEqual(['a:1,2,3'])
      await q.markDone('a', [1], 1)
      // The rest is due again at once, here or at another instance, not held by a renewed claim.
      expect(sizes(await other.dueGroups(1, 3, 10))).toEqual(['a:2,3,4'])
      await other.markFailed('a', [2], down, 50)
      expect(await q.status('a')).toMatchObject({ state: 'failing', nextAttemptAt: 50 })
      expect(sizes(await q.dueGroups(50, 3, 10))).toEqual(['a:2,3,4'])
    } finally {
      await q.close()
      await other.close()
    }
  })

  it('refuses appends at the backlog bound (UploadBacklogFull), through the uploader', async () => {
    const { admin, instance } = await database()
    const q = instance()
    const signer = await generateKey()
    const u = new StorachaUploader({ queue: q, signer, target: { url: 'http://127.0.0.1:9/', did: 'did:web:example.com', receiptsEndpoint: 'http://127.0.0.1:9/receipt/' }, backlogMax: 3, retryMaxMs: 2000 })
    try {
      for (const t of [1, 2]) await job(admin, q, 'a', t)
      await u.admit('a', undefined)
      await job(admin, q, 'a', 3)
      const refused = await u.admit('a', undefined).catch((e: unknown) => e)
      expect(refused).toBeInstanceOf(UploadBacklogFullError)
      expect((refused as UploadBacklogFullError).pending).toBe(3)
      await u.admit('b', undefined) // only that log
    } finally {
      await u.close()
      await q.close()
    }
  })

  it('a pack queues its CAR in its own transaction (PgBackend with uploads on); catchUp queues CARs packed while uploads were off', async () => {
    const { admin, url } = await database()
    const space = (await generateKey()).did()
    const queued: string[] = []
    const off = new PgBackend(postgres.pool(url, 3), { leaseMs: 300 })
    const s1 = (await off.open(space, true))!
    await s1.archive.pack(1, new Map([['tile/entries/000.p/1', new Uint8Array([1])]]))
    await s1.archive.close()
    const on = new PgBackend(postgres.pool(url, 3), { leaseMs: 300, uploads: { queued: (id) => queued.push(id) } })
    const s2 = (await on.open(space, true))!
    await s2.archive.pack(2, new Map([['tile/entries/000.p/2', new Uint8Array([1, 2])]]))
    await s2.archive.close()
    expect(queued).toEqual([space])
    const q = new PgUploadQueue(admin)
    try {
      expect(await q.latestTreeSize(space)).toBe(2)
      expect(await q.pendingCount(space)).toBe(1)
      // Checkpoint 1 was packed with uploads off; it is older than the newest queued one, so the
      // catch-up (queue what is newer than the newest queued) leaves it; a fresh log's packs are all queued.
      const other = (await generateKey()).did()
      const s3 = (await off.open(other, true))!
      await s3.archive.pack(1, new Map([['tile/entries/000.p/1', new Uint8Array([3])]]))
      await s3.archive.pack(2, new Map([['tile/entries/000.p/2', new Uint8Array([3, 4])]]))
      await s3.archive.close()
      expect(await q.catchUp()).toBe(2)
      expect(await q.catchUp()).toBe(0)
      const groups = await q.dueGroups(Date.now() + 60_000, 10, 10)
      const car = await q.readCar(groups.find((g) => g[0]!.space === other)![1]!)
      expect(car.length).toBe(await q.carSize(groups.find((g) => g[0]!.space === other)![1]!))
      expect(sizes(groups).sort()).toEqual([`${other}:1,2`, `${space}:2`].sort())
    } finally {
      await q.close()
    }
  })
})

describe('PgUploadQueue: two instances on one database', () => {
  it('claiming concurrently, every row is uploaded exactly once, oldest first per log, never in flight at both', async () => {
    const { admin, instance } = await database()
    const queues = [instance({ holder: 'A', claimMs: 10_000 }), instance({ holder: 'B', claimMs: 10_000 })]
    const spaces = Array.from({ length: 12 }, (_, i) => `space-${String(i).padStart(2, '0')}`)
    for (const s of spaces) for (let t = 1; t <= 7; t++) await job(admin, queues[0]!, s, t)
    const inFlight = new Map<string, string>()
    const uploads = new Map<string, number[]>()
    const overlaps: string[] = []
    const by = { A: 0, B: 0 }
    const drain = async (q: PgUploadQueue) => {
      for (let idle = 0; idle < 3; ) {
        const groups = await q.dueGroups(Date.now(), 3, 4)
        if (groups.length === 0) {
          idle++
          await sleep(20)
          continue
        }
        idle = 0
        await Promise.all(
          groups.map(async (g) => {
            const keys = g.map((j) => `${j.space}@${j.treeSize}`)
            for (const k of keys) {
              if (inFlight.has(k)) overlaps.push(`${k} at ${inFlight.get(k)} and ${q.holder}`)
              inFlight.set(k, q.holder)
            }
            await sleep(5) // the "upload"
            for (const j of g) uploads.set(j.space, [...(uploads.get(j.space) ?? []), j.treeSize])
            by[q.holder as 'A' | 'B'] += g.length
            for (const k of keys) inFlight.delete(k)
            await q.markDone(g[0]!.space, g.map((j) => j.treeSize), Date.now())
          }),
        )
      }
    }
    try {
      await Promise.all(queues.map(drain))
      expect(overlaps).toEqual([])
      for (const s of spaces) expect(uploads.get(s), s).toEqual([1, 2, 3, 4, 5, 6, 7])
      expect(by.A + by.B).toBe(spaces.length * 7)
      expect(by.A).toBeGreaterThan(0)
      expect(by.B).toBeGreaterThan(0)
      for (const s of spaces) expect(await queues[1]!.status(s)).toMatchObject({ state: 'uploaded', uploadedTreeSize: 7, lagEntries: 0 })
    } finally {
      await Promise.all(queues.map((q) => q.close()))
    }
  })

  it("a claim of an instance that stops renewing passes to the other once it expires; a live one's never does; the late instance's failure changes nothing", async () => {
    const { admin, instance } = await database()
    const dead = instance({ holder: 'dead', claimMs: 300, renew: false })
    const live = instance({ holder: 'live', claimMs: 300 })
    const other = instance({ holder: 'other', claimMs: 300 })
    try {
      for (const t of [1, 2, 3]) await job(admin, dead, 'x', t)
      for (const t of [1, 2]) await job(admin, dead, 'y', t)
      const taken = await dead.dueGroups(Date.now(), 2, 1)
      expect(sizes(taken)).toEqual(['x:1,2'])
      const held = await live.dueGroups(Date.now(), 5, 5)
      expect(sizes(held)).toEqual(['y:1,2'])
      // Nothing due for another instance while both claims last (x's newest job waits behind its claimed head).
      expect(await other.dueGroups(Date.now(), 5, 5)).toEqual([])
      expect(await other.nextDue()).toBeUndefined()
      // The dead instance's claim expires; the live one's is renewed meanwhile.
      let again: Awaited<ReturnType<PgUploadQueue['dueGroups']>> = []
      while (again.length === 0) {
        await sleep(100)
        again = await other.dueGroups(Date.now(), 5, 5)
      }
      expect(sizes(again)).toEqual(['x:1,2,3'])
      await sleep(600) // two claim durations: the live claim, renewed, still holds
      expect(await other.dueGroups(Date.now(), 5, 5)).toEqual([])
      // The late instance's failure is not recorded over the new holder's claim; the upload lands.
      await dead.markFailed('x', [1, 2], down, Date.now() + 60_000)
      expect((await other.status('x'))!.state).toBe('pending')
      await other.markDone('x', [1, 2, 3], Date.now())
      await live.markDone('y', [1, 2], Date.now())
      expect(await other.status('x')).toMatchObject({ state: 'uploaded', uploadedTreeSize: 3 })
      expect(await other.status('y')).toMatchObject({ state: 'uploaded', uploadedTreeSize: 2 })
      // A clean close gives up this instance's claims at once.
      await job(admin, live, 'z', 1)
      expect(sizes(await live.dueGroups(Date.now(), 5, 5))).toEqual(['z:1'])
      await live.close()
      expect(sizes(await other.dueGroups(Date.now(), 5, 5))).toEqual(['z:1'])
    } finally {
      await Promise.all([dead, live, other].map((q) => q.close()))
    }
  })
})
