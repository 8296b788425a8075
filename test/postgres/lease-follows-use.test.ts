/**
 * Leases follow use (issue 14 item 2): the revocation log on one PostgreSQL database, written by two
 * instances (two pools, two backends, each its own SQLite index). Each closes the log once idle and
 * lets its lease go, so the other takes it, reads what was appended meanwhile and appends after it:
 * one log, every record once, each instance's index given every record's place. And a holder asleep
 * inside a write transaction (paused) cannot hold off another instance's takeover past its lease.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { WitnessQuorum } from '../../src/log/log.js'
import { createPool } from '../../src/server/database.js'
import { RevocationLog } from '../../src/server/revocations.js'
import { WriteLease } from '../../src/storage/postgres/lease.js'
import { migrate } from '../../src/storage/postgres/migrate.js'
import { PgBackend } from '../../src/storage/postgres/pg-backend.js'
import { LOG_MIGRATIONS } from '../../src/storage/postgres/schema.js'
import { ed25519Signer } from '../../src/tlog/index.js'
import { type RevocationRecord, UcanStore } from '../../src/ucan/index.js'
import { usePostgres } from '../helpers/postgres.js'

const SEED = new Uint8Array(32).fill(9)
const witnesses: WitnessQuorum = { cosign: async (note) => ({ note, cosigned: new Set<string>(), satisfied: true }) }
const record = (ucan: string): RevocationRecord => ({ ucan, scope: 'did:key:z6MkScope', revoker: 'did:key:z6MkRevoker', invocation: 'bafyinvocation', time: 1_795_000_000 })

const postgres = usePostgres()
const dirs: string[] = []
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
})

/** One instance: its own pool, backend and SQLite index; the revocation log released when idle 20 ms. */
async function instance(url: string, idleCloseMs: number) {
  const dir = await mkdtemp(join(tmpdir(), 'ucanlog-pg-revlog-'))
  dirs.push(dir)
  const backend = new PgBackend(postgres.pool(url, 4), { leaseMs: 10_000, waitMs: 2000 })
  const store = UcanStore.open(join(dir, 'ucan.db'))
  let released = 0
  const log = await RevocationLog.open({
    backend,
    originPrefix: 'test',
    signer: (origin) => ed25519Signer(origin, SEED),
    witnesses: () => witnesses,
    store: store.revocations,
    log: { batchMaxAgeMs: 1 },
    idleCloseMs,
    release: async () => {
      released++
      await backend.releaseServiceLog('revocations')
    },
  })
  return { log, store, backend, released: () => released }
}

describe('revocation log on PostgreSQL: two instances, leases follow use', () => {
  it('each instance takes the log in turn (lease 10 s, wait 2 s: never waiting for one to expire) and appends after the other; reads work while it is closed', async () => {
    const url = await postgres.server().database()
    await migrate(postgres.pool(url, 2), LOG_MIGRATIONS)
    const a = await instance(url, 20)
    const b = await instance(url, 20)
    try {
      expect(await a.log.record(record('bafyA'))).toMatchObject({ index: 0, created: true })
      // b takes the log once a let it go (released, not expired: the lease is 10 s, the wait 2 s).
      expect(await b.log.record(record('bafyB'))).toMatchObject({ index: 1, created: true })
      expect(a.released()).toBeGreaterThanOrEqual(1)
      expect(await a.log.record(record('bafyC'))).toMatchObject({ index: 2, created: true })
      // Each index knows every record's place, including those the other instance appended.
      for (const i of [a, b]) await i.log.record(record('bafyD')) // a no-op when already logged
      for (const [ucan, index] of [['bafyA', 0], ['bafyB', 1], ['bafyC', 2], ['bafyD', 3]] as const) {
        expect(a.store.revocations.logIndex(record(ucan))).toBe(index)
        expect(b.store.revocations.logIndex(record(ucan))).toBe(index)
      }
      // Once idle, both have closed it; reads come from the database.
      await expect.poll(() => a.released() > 1 && b.released() > 0, { timeout: 5000 }).toBe(true)
      await expect.poll(async () => (await b.log.published())?.checkpoint.size, { timeout: 5000 }).toBe(4)
      expect((await a.log.read(0, 10)).entries.length).toBe(4)
    } finally {
      await a.log.close()
      await b.log.close()
      a.store.close()
      b.store.close()
    }
  })
})

describe('a holder paused inside a write transaction', () => {
  it("cannot hold off the takeover: the server ends its session after one lease (the service's pool settings), the other instance takes the log, the sleeper's write is refused", async () => {
    const url = await postgres.server().database()
    await migrate(postgres.pool(url, 2), LOG_MIGRATIONS)
    await postgres.pool(url, 1).query("INSERT INTO log_logs (log_id, kind) VALUES ('service:test', 'service')")
    // Two instances' pools as the service makes them (statement timeout 10 s, lease 300 ms).
    const pools = [0, 1].map(() => createPool({ databaseUrl: url, databasePoolMax: 2, databaseTimeoutMs: 10_000, databaseLeaseMs: 300 }))
    try {
      const a = await WriteLease.acquire(pools[0]!, 'service:test', { leaseMs: 300, renew: false })
      // a's write takes the lease row FOR SHARE, then its process sleeps (as under SIGSTOP) until woken.
      let wake: () => void = () => {}
      const asleep = new Promise<void>((ok) => (wake = ok))
      let inside: () => void = () => {}
      const entered = new Promise<void>((ok) => (inside = ok))
      const write = a.transaction(async (client) => {
        inside()
        await asleep
        await client.query("INSERT INTO log_files (log_id, path, bytes) VALUES ('service:test', 'late', '\\x00')")
      })
      await entered
      // The takeover (an UPDATE of that row) goes through once the server ended a's idle transaction.
      const b = await WriteLease.acquire(pools[1]!, 'service:test', { leaseMs: 300, waitMs: 5000, renew: false })
      expect(Number(b.token)).toBe(Number(a.token) + 1)
      wake()
      await expect(write).rejects.toMatchObject({ name: expect.stringMatching(/^(DatabaseUnavailable|LeaseLost)$/) })
      expect((await pools[1]!.query("SELECT count(*)::int AS n FROM log_files WHERE log_id = 'service:test'")).rows[0].n).toBe(0)
      await b.release()
    } finally {
      await Promise.all(pools.map((p) => p.end()))
    }
  })
})
