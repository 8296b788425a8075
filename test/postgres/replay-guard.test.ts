/**
 * PgReplayGuard (src/ucan/pg-replay.ts): the ReplayGuard conformance suite on a real PostgreSQL
 * server, and several instances (one pool and one guard each) on one database: an invocation sent
 * to both runs once and both answer its outcome; shares hold across instances; a claim whose
 * instance died answers UNKNOWN_OUTCOME and never runs again; a claim of a live but stalled
 * instance is waited for, then refused by name (ReplayPending), and answered once it settles.
 */
import { afterEach, describe, expect, test, vi } from 'vitest'
import { PgReplayGuard, REPLAY_MIGRATIONS, ReplayGuardFull, ReplayPending, UNKNOWN_OUTCOME } from '../../src/ucan/index.js'
import { MIGRATIONS } from '../../src/server/migrations.js'
import { openPgUcanStores, pgWitnessStore } from '../../src/server/pg-stores.js'
import { migrate } from '../../src/storage/postgres/migrate.js'
import { replayGuardConformance } from '../ucan/replay-conformance.js'
import { usePostgres } from '../helpers/postgres.js'
import { databaseWith } from './schema.js'

const db = usePostgres()
const guards: PgReplayGuard[] = []
afterEach(async () => {
  await Promise.allSettled(guards.splice(0).map((g) => g.close()))
})

replayGuardConformance('PgReplayGuard', async ({ now, maxPerOwner }) => {
  const pool = db.pool(await databaseWith(db.server(), REPLAY_MIGRATIONS))
  const guard = await PgReplayGuard.open(pool, { now, maxReplayPerOwner: maxPerOwner })
  return { guard, close: () => guard.close() }
})

/** `n` guards, each on its own pool (one per instance), on one fresh database. */
async function instances(n: number, options: { maxReplayPerOwner?: number; waitMs?: number; pollMs?: number } = {}) {
  const url = await databaseWith(db.server(), REPLAY_MIGRATIONS)
  const out: PgReplayGuard[] = []
  for (let i = 0; i < n; i++) out.push(await PgReplayGuard.open(db.pool(url), { now: () => 1000, ...options }))
  guards.push(...out)
  return { url, guards: out }
}

/** A task held until `release()`, counting its runs. */
function gated<T>(value: T) {
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  let started!: () => void
  const running = new Promise<void>((r) => (started = r))
  const counter = { runs: 0 }
  const task = async () => {
    counter.runs++
    started()
    await gate
    return value
  }
  return { task, release, running, counter }
}

const key = (id: string, owner = 'A') => ({ owner, id, expiresAt: 2000 })

describe('PgReplayGuard: several instances on one database', () => {
  test('the same invocation sent to two instances at once runs once; both answer its outcome (the waiter woken by its notification)', async () => {
    const { guards: [a, b] } = await instances(2, { pollMs: 60_000, waitMs: 60_000 })
    const first = gated({ ok: 'a' })
    let bRuns = 0
    const onA = a!.once(key('x'), first.task)
    await first.running
    const onB = b!.once(key('x'), async () => (bRuns++, { ok: 'b' }))
    first.release()
    expect(await Promise.all([onA, onB])).toEqual([{ ok: 'a' }, { ok: 'a' }])
    expect([first.counter.runs, bRuns]).toEqual([1, 0])
    // Later, on either: the first outcome, nothing run.
    expect(await b!.once(key('x'), async () => (bRuns++, { ok: 'late' }))).toEqual({ ok: 'a' })
    expect(await b!.seen('x')).toEqual({ ok: 'a' })
    expect(bRuns).toBe(0)
  })

  test('many invocations sent to three instances at once: each runs exactly once in all, every caller gets its one outcome', async () => {
    const { guards: g } = await instances(3)
    const runs = new Map<string, number>()
    const ids = Array.from({ length: 40 }, (_, i) => `id${i}`)
    const calls = g.flatMap((guard, k) =>
      ids.map((id) =>
        guard.once(key(id, `owner${ids.indexOf(id) % 4}`), async () => {
          runs.set(id, (runs.get(id) ?? 0) + 1)
          return `${id} by ${k}`
        }),
      ),
    )
    const outcomes = await Promise.all(calls)
    expect([...runs.values()].every((n) => n === 1)).toBe(true)
    expect(runs.size).toBe(ids.length)
    for (const [i, id] of ids.entries()) {
      const mine = [outcomes[i], outcomes[ids.length + i], outcomes[2 * ids.length + i]]
      expect(new Set(mine).size).toBe(1)
      expect(mine[0]).toMatch(new RegExp(`^${id} by \\d$`))
    }
  })

  test("an owner's share holds across instances: with a share of 3, exactly 3 of 10 new ids sent to two instances run", async () => {
    const { guards: [a, b] } = await instances(2, { maxReplayPerOwner: 3 })
    let runs = 0
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 ? a! : b!).once(key(`n${i}`), async () => ++runs)))
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3)
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ReplayGuardFull)
    expect(runs).toBe(3)
    expect(await a!.count('A')).toBe(3)
  })

  test('a claim whose instance died without an outcome answers UNKNOWN_OUTCOME on every instance and never runs again', async () => {
    const { url, guards: [a, b] } = await instances(2)
    const stuck = gated('never')
    void a!.once(key('d'), stuck.task).catch(() => {})
    await stuck.running
    // The claim is committed and pending: a live claimer is waited for, not answered.
    expect(await b!.seen('d')).toBeUndefined()
    // Instance a dies: its connections are gone (as after kill -9), so is its liveness lock.
    const admin = db.pool(url, 1)
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1::bigint::oid AND objsubid = 2)`, [a!.instance])
    let ran = false
    expect(await b!.once(key('d'), async () => (ran = true))).toEqual(UNKNOWN_OUTCOME)
    expect(await b!.seen('d')).toEqual(UNKNOWN_OUTCOME)
    // A new instance (a restart of a) answers the same.
    const c = await PgReplayGuard.open(db.pool(url), { now: () => 1000 })
    guards.push(c)
    expect(await c.once(key('d'), async () => (ran = true))).toEqual(UNKNOWN_OUTCOME)
    expect(ran).toBe(false)
    // Had its run finished after all (a paused, not killed), its outcome would be the one remembered.
    stuck.release()
    await a!.close()
    expect(await c.seen('d')).toBe('never')
  })

  test('an instance whose kept connection was cut takes its liveness lock again at its next admission: claims go on, and are waited for again', async () => {
    const { url, guards: [a, b] } = await instances(2, { pollMs: 60_000, waitMs: 60_000 })
    const admin = db.pool(url, 1)
    expect(a!.connected).toBe(true)
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1::bigint::oid AND objsubid = 2`, [a!.instance])
    await vi.waitFor(() => expect(a!.connected).toBe(false))
    const slow = gated('after the cut')
    const onA = a!.once(key('r'), slow.task)
    await slow.running
    let ran = false
    const onB = b!.once(key('r'), async () => (ran = true)) // a is alive again: b waits, then gets a's outcome
    slow.release()
    expect(await Promise.all([onA, onB])).toEqual(['after the cut', 'after the cut'])
    expect(ran).toBe(false)
    expect(a!.connected).toBe(true)
  })

  test('a live instance stalled on a claim: the other waits up to its bound, then ReplayPending (nothing run); once the claim settles, its outcome', async () => {
    const { guards: [a, b] } = await instances(2, { waitMs: 300, pollMs: 50 })
    const slow = gated({ ok: 'slow' })
    const onA = a!.once(key('s'), slow.task)
    await slow.running
    let ran = false
    const refused = b!.once(key('s'), async () => (ran = true))
    await expect(refused).rejects.toBeInstanceOf(ReplayPending)
    await expect(refused).rejects.toMatchObject({ name: 'ReplayPending', id: 's', waitedMs: 300 })
    expect(ran).toBe(false)
    slow.release()
    expect(await onA).toEqual({ ok: 'slow' })
    expect(await b!.once(key('s'), async () => (ran = true))).toEqual({ ok: 'slow' })
    expect(ran).toBe(false)
  })

  test('a task that rejects is forgotten on every instance: a waiter elsewhere is admitted again and runs it; its place is freed', async () => {
    const { guards: [a, b] } = await instances(2, { maxReplayPerOwner: 1, pollMs: 60_000, waitMs: 60_000 })
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let started!: () => void
    const running = new Promise<void>((r) => (started = r))
    const failing = a!.once(key('f'), async () => {
      started()
      await gate
      throw new Error('boom')
    })
    await running
    const onB = b!.once(key('f'), async () => 'second try')
    release()
    await expect(failing).rejects.toThrow('boom')
    expect(await onB).toBe('second try')
    expect(await a!.once(key('f'), async () => 'third')).toBe('second try')
    expect(await a!.count('A')).toBe(1)
  })

  test('outcomes commit with synchronous_commit on, whatever the server default (off here); claims follow the server', async () => {
    const { url } = await instances(0)
    const pool = db.pool(url)
    const levels: string[] = []
    // Fault-injection probe on every connection the pool makes: before each claim or outcome
    // write, read the setting on the same connection.
    pool.on('connect', (c) => {
      const query = c.query.bind(c) as (...a: unknown[]) => Promise<import('pg').QueryResult>
      ;(c as { query: unknown }).query = (...args: unknown[]) => {
        if (typeof args[0] !== 'string' || !/^\s*(UPDATE ucan_replay r SET outcome|INSERT INTO ucan_replay \()/.test(args[0])) return query(...args)
        return query('SHOW synchronous_commit').then((r) => {
          levels.push(`${(args[0] as string).trim().split(' ')[0]} ${r.rows[0].synchronous_commit}`)
          return query(...args)
        })
      }
    })
    expect((await pool.query('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe('off')
    const g = await PgReplayGuard.open(pool, { now: () => 1000 })
    guards.push(g)
    expect(await Promise.all([g.once(key('p'), async () => 1), g.once(key('q'), async () => 2)])).toEqual([1, 2])
    expect(levels).toEqual(['INSERT off', 'UPDATE on'])
  })
})

describe('the service wiring (src/server/pg-stores.ts) over the full migration list', () => {
  test('every step of src/server/migrations.ts applies once (again: nothing); the stores built from one pool work together', async () => {
    const url = await db.server().database()
    const pool = db.pool(url)
    const first = await migrate(pool, MIGRATIONS)
    expect(first.applied).toEqual(expect.arrayContaining(['ucan-0001-replay', 'ucan-0002-revocations', 'witness-0001-state']))
    expect((await migrate(pool, MIGRATIONS)).applied).toEqual([])
    await expect(openPgUcanStores(db.pool(url, 1))).rejects.toThrow(/at least 2 connections/)
    const stores = await openPgUcanStores(pool, { now: () => 1000, maxRevocationsPerScope: 1 })
    expect(await stores.replay.once(key('w'), async () => 'ran')).toBe('ran')
    expect(await stores.revocations.record({ ucan: 'bafyU', scope: 'did:key:z6MkS', revoker: 'did:key:z6MkS', invocation: 'bafyI', time: 1000 })).toMatchObject({ created: true })
    const witness = pgWitnessStore(pool)
    expect(await witness.addLog('example.com/log')).toBe(true)
    await stores.close()
    await expect(stores.replay.once(key('x'), async () => 'closed')).rejects.toThrow('the replay guard is closed')
    // A restart on the same database: the outcome is remembered.
    const again = await openPgUcanStores(pool, { now: () => 1000 })
    expect(await again.replay.once(key('w'), async () => 'again')).toBe('ran')
    await again.close()
  })
})
