/**
 * Write leases and fencing (src/storage/postgres/lease.ts) with two backends on two pools, one
 * PostgreSQL database — two instances of the service. The holder that stops renewing (the fault
 * injected: `renew: false`, as a paused process) loses the log to the other once its lease has
 * expired; its later writes are refused with LeaseLost and leave nothing visible; the log's stored
 * state stays consistent; a write in flight when the other instance takes over is either wholly
 * before the takeover or refused.
 */
import { logRefusal } from '../../src/ucan/errors.js'
import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import { type WitnessQuorum, Log } from '../../src/log/log.js'
import { checkStoredState, readEntries } from '../../src/log/state.js'
import { WriteLease } from '../../src/storage/postgres/lease.js'
import { migrate } from '../../src/storage/postgres/migrate.js'
import { PgBackend, type PgBackendOptions } from '../../src/storage/postgres/pg-backend.js'
import { LOG_MIGRATIONS } from '../../src/storage/postgres/schema.js'
import { ed25519Signer, ed25519Verifier } from '../../src/tlog/index.js'
import { usePostgres } from '../helpers/postgres.js'

const SPACE = 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'
const ORIGIN = `example.com/logs/${SPACE}`
const signer = ed25519Signer(ORIGIN, new Uint8Array(32).fill(5))
const verifier = ed25519Verifier(signer.vkey)
/** A cosigner standing in for the witnesses (as in the engine's tests): quorum always met. */
const witnesses: WitnessQuorum = { cosign: async (note) => ({ note, cosigned: new Set<string>(), satisfied: true }) }
const entry = (who: string, i: number) => new TextEncoder().encode(`${who} ${i}`)
const text = (b: Uint8Array) => new TextDecoder().decode(b)

const postgres = usePostgres()

/** A fresh database with the log schema; `instance()` gives each caller its own pool (an instance). */
async function database(): Promise<{ instance: (o?: PgBackendOptions) => { pool: pg.Pool; backend: PgBackend } }> {
  const url = await postgres.server().database()
  await migrate(postgres.pool(url, 2), LOG_MIGRATIONS)
  return {
    instance(o = {}) {
      const pool = postgres.pool(url, 6)
      return { pool, backend: new PgBackend(pool, { leaseMs: 300, ...o }) }
    },
  }
}

async function openLog(backend: PgBackend): Promise<Log> {
  const storage = (await backend.open(SPACE, true))!
  return Log.open({ id: SPACE, origin: ORIGIN, signer, verifier, witnesses, batchMaxAgeMs: 5, publishRetryMs: 20, ...storage })
}

/** Waits until the lease row of `SPACE` has expired in the database's clock (no wall-clock guess). */
async function untilExpired(pool: pg.Pool): Promise<void> {
  for (;;) {
    const r = await pool.query('SELECT expires_at <= now() AS expired FROM log_leases WHERE log_id = $1', [SPACE])
    if (r.rows[0]?.expired) return
    await new Promise((ok) => setTimeout(ok, 20))
  }
}

describe('write leases and fencing (two instances, one database)', () => {
  it('lets the second instance take over after expiry and refuses the first one\'s later writes, invisibly', async () => {
    const db = await database()
    const a = db.instance({ renew: false }) // paused: never renews
    const b = db.instance()
    const logA = await openLog(a.backend)
    const fromA = await Promise.all(Array.from({ length: 10 }, (_, i) => logA.append(entry('a', i))))
    expect(fromA.map((r) => r.index)).toEqual(Array.from({ length: 10 }, (_, i) => i))
    await logA.settled()

    await untilExpired(a.pool)
    const logB = await openLog(b.backend) // takes the lease: token 2
    const tokens = await b.pool.query('SELECT token::int AS token FROM log_leases WHERE log_id = $1', [SPACE])
    expect(tokens.rows[0].token).toBe(2)
    expect(logB.treeSize).toBe(10)
    const fromB = await Promise.all(Array.from({ length: 5 }, (_, i) => logB.append(entry('b', i))))
    expect(fromB.map((r) => r.index)).toEqual([10, 11, 12, 13, 14])

    // The first instance still believes it holds the log (size 10): its append is refused.
    const refused = await logA.append(entry('a', 10)).then(() => undefined, (e: unknown) => e)
    expect(refused).toMatchObject({ name: 'LeaseLost' })
    // Over RPC the append is refused by that name (a retryable refusal), not InternalError.
    expect(logRefusal(refused)?.name).toBe('LeaseLost')
    // And every later write through it, even once the lease is free again.
    await logB.close()
    await expect(logA.append(entry('a', 11))).rejects.toMatchObject({ name: 'LeaseLost' })

    // The stored log is B's: A's refused entries are nowhere; the state checks (tiles, root, checkpoint).
    const view = (await b.backend.files(SPACE))!
    const state = await checkStoredState(view, { origin: ORIGIN, verifier })
    expect(state.size).toBe(15)
    expect(state.published?.size).toBe(15)
    const all = (await readEntries(view, 15, 0, 100)).map(text)
    expect(all).toEqual([...Array.from({ length: 10 }, (_, i) => `a ${i}`), ...Array.from({ length: 5 }, (_, i) => `b ${i}`)])
    const files = await b.pool.query("SELECT count(*)::int AS n FROM log_files WHERE log_id = $1 AND position('a 10'::bytea IN bytes) > 0", [SPACE])
    expect(files.rows[0].n).toBe(0)
    await logA.close().catch(() => {})
  })

  it('makes a takeover wait for a write in flight, so the new holder reads after it', async () => {
    const db = await database()
    const a = db.instance({ renew: false })
    const b = db.instance()
    await a.pool.query("INSERT INTO log_logs (log_id, kind) VALUES ($1, 'space')", [SPACE])
    const leaseA = await WriteLease.acquire(a.pool, SPACE, { leaseMs: 300, renew: false })
    let open!: () => void
    const gate = new Promise<void>((ok) => (open = ok))
    // A's write passes its token check, then stalls (a slow statement) until the gate opens.
    const writing = leaseA.transaction(async (c) => {
      await c.query("INSERT INTO log_files (log_id, path, bytes) VALUES ($1, 'checkpoint', '\\x41')", [SPACE])
      await gate
    })
    await untilExpired(b.pool)
    let taken = false
    const takeover = WriteLease.acquire(b.pool, SPACE, { leaseMs: 300 }).then((l) => ((taken = true), l))
    // B's acquisition blocks on A's FOR SHARE lock (seen in pg_stat_activity), not before.
    for (;;) {
      const r = await b.pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO log_leases%'")
      if (r.rows[0].n > 0) break
      expect(taken).toBe(false)
      await new Promise((ok) => setTimeout(ok, 10))
    }
    open()
    await writing
    const leaseB = await takeover
    // The new holder sees A's committed write; A can write no more.
    const seen = await b.pool.query("SELECT bytes FROM log_files WHERE log_id = $1 AND path = 'checkpoint'", [SPACE])
    expect(text(seen.rows[0].bytes)).toBe('A')
    await expect(leaseA.transaction(async () => {})).rejects.toMatchObject({ name: 'LeaseLost' })
    await leaseB.release()
  })

  it('a holder that releases a lease another instance took meanwhile (a paused process, resumed) reports it lost; a lease still its own is released quietly', async () => {
    const db = await database()
    const a = db.instance()
    const b = db.instance()
    await a.pool.query("INSERT INTO log_logs (log_id, kind) VALUES ($1, 'space')", [SPACE])
    const lost: string[] = []
    const warned: string[] = []
    const logger = { warn: (_o: object, msg?: string) => void warned.push(msg ?? '') }
    // Released while still its own: not lost.
    const first = await WriteLease.acquire(a.pool, SPACE, { leaseMs: 300, renew: false, onLost: (id) => lost.push(id), logger })
    await first.release()
    expect(lost).toEqual([])
    // Paused past its lease (no renewal), taken by B, then released when A resumes (its idle release).
    const leaseA = await WriteLease.acquire(a.pool, SPACE, { leaseMs: 300, renew: false, onLost: (id) => lost.push(id), logger })
    await untilExpired(b.pool)
    const leaseB = await WriteLease.acquire(b.pool, SPACE, { leaseMs: 300 })
    await leaseA.release()
    expect(lost).toEqual([SPACE])
    expect(warned).toContain('write lease lost to another instance: this log refuses writes here until reopened')
    // B's lease is untouched by A's release.
    await expect(leaseB.transaction(async () => 'written')).resolves.toBe('written')
    await leaseB.release()
  })

  it('refuses to open a log another instance holds and renews, naming LeaseHeld', async () => {
    const db = await database()
    const a = db.instance()
    const b = db.instance({ waitMs: 50 })
    const logA = await openLog(a.backend)
    await expect(b.backend.open(SPACE, false)).rejects.toMatchObject({ name: 'LeaseHeld' })
    // A's close releases the lease at once: B opens without waiting for expiry.
    await logA.close()
    const storage = (await b.backend.open(SPACE, false))!
    await storage.archive.close()
  })
})
