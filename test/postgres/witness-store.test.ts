/**
 * PgWitnessStore (witness/pg-store.ts): the WitnessStore conformance suite on a real PostgreSQL
 * server, and two witness processes (two pools, two HTTP witnesses) on one database racing the
 * same add-checkpoint: exactly one cosigns, the other answers 409 with the winner's size, and a
 * stalled compare-and-swap can never roll the log back.
 */
import type pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { PgWitnessStore, WITNESS_MIGRATIONS } from '../../witness/index.js'
import { CP1, CP3, CP5, LOG, note, PROOF_1_3, PROOF_1_5 } from '../vectors/litewitness.js'
import { expectResponse, request, startWitness, type Running } from '../witness/helpers.js'
import { witnessStoreConformance } from '../witness/store-conformance.js'
import { usePostgres } from '../helpers/postgres.js'
import { databaseWith } from './schema.js'

const db = usePostgres()

witnessStoreConformance('PgWitnessStore', async () => {
  const store = new PgWitnessStore(db.pool(await databaseWith(db.server(), WITNESS_MIGRATIONS)))
  return { store, close() {} }
})

/** A store whose compare-and-swap can be held just before its write (to force an interleaving). */
class Stalling extends PgWitnessStore {
  stall: ((newSize: number) => Promise<void> | undefined) | undefined
  override async compareAndSwap(origin: string, oldSize: number, newSize: number, rootHash: Uint8Array, checkpoint: string) {
    await this.stall?.(newSize)
    return super.compareAndSwap(origin, oldSize, newSize, rootHash, checkpoint)
  }
}

describe('PgWitnessStore: two witness processes on one database', () => {
  const running: Running[] = []
  afterEach(async () => {
    await Promise.all(running.splice(0).map((w) => w.close()))
  })

  /** Two witnesses (one pool each) on a fresh database holding the litewitness log at size 1. */
  async function twoWitnesses() {
    const url = await databaseWith(db.server(), WITNESS_MIGRATIONS)
    const a = new Stalling(db.pool(url))
    const b = new Stalling(db.pool(url))
    await a.addLog(LOG.origin)
    await b.addKey(LOG.origin, LOG.vkey)
    const [wa, wb] = [await startWitness(a), await startWitness(b)]
    running.push(wa, wb)
    await expectResponse(await wa.post(request(0, [], note(CP1))), 200, 'text/plain; charset=utf-8')
    return { a, b, wa, wb }
  }

  it('the same add-checkpoint sent to both, many times at once: one 200, every other 409 "3"', async () => {
    const { a, wa, wb } = await twoWitnesses()
    const body = request(1, PROOF_1_3, note(CP3))
    const responses = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? wa : wb).post(body)))
    expect(responses.map((r) => r.status).sort()).toEqual([200, ...Array(11).fill(409)])
    for (const r of responses) if (r.status === 409) expect(await r.text()).toBe('3\n')
    expect(await a.getLog(LOG.origin)).toMatchObject({ treeSize: 3, checkpoint: note(CP3) })
  })

  it('a compare-and-swap stalled in one process loses to the other process that advanced the log: 409, no rollback', async () => {
    const { a, b, wa, wb } = await twoWitnesses()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let reached!: () => void
    const atCas = new Promise<void>((r) => (reached = r))
    a.stall = (newSize) => {
      if (newSize !== 3) return undefined
      reached()
      return gate
    }
    const slow = wa.post(request(1, PROOF_1_3, note(CP3)))
    await atCas
    await expectResponse(await wb.post(request(1, PROOF_1_5, note(CP5))), 200, 'text/plain; charset=utf-8')
    release()
    await expectResponse(await slow, 409, 'text/x.tlog.size', '5\n')
    expect(await b.getLog(LOG.origin)).toMatchObject({ treeSize: 5, checkpoint: note(CP5) })
  })
})

describe('PgWitnessStore: the database itself', () => {
  it('a trigger refuses any update lowering a size, even from other tools', async () => {
    const pool = db.pool(await databaseWith(db.server(), WITNESS_MIGRATIONS))
    const s = new PgWitnessStore(pool)
    await s.addLog('o')
    expect(await s.compareAndSwap('o', 0, 5, new Uint8Array(32), 'cp5')).toBe(true)
    await expect(pool.query("UPDATE witness_log SET tree_size = 1 WHERE origin = 'o'")).rejects.toThrow(/never decrease/)
    expect((await s.getLog('o'))?.treeSize).toBe(5)
  })

  it('commits each change with synchronous_commit on, whatever the server default (off here)', async () => {
    const pool = db.pool(await databaseWith(db.server(), WITNESS_MIGRATIONS))
    // Fault-injection probe: before each write the store sends, read the setting on the same connection.
    const levels: string[] = []
    pool.on('connect', (c) => {
      const query = c.query.bind(c) as (...a: unknown[]) => Promise<pg.QueryResult>
      ;(c as { query: unknown }).query = (...args: unknown[]) => {
        if (typeof args[0] !== 'string' || !/^(UPDATE|INSERT|DELETE)/.test(args[0])) return query(...args)
        return query('SHOW synchronous_commit').then((r) => {
          levels.push(r.rows[0].synchronous_commit as string)
          return query(...args)
        })
      }
    })
    expect((await pool.query('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe('off')
    const s = new PgWitnessStore(pool)
    await s.addLog(LOG.origin)
    await s.addKey(LOG.origin, LOG.vkey)
    await s.compareAndSwap(LOG.origin, 0, 1, new Uint8Array(32), 'cp1')
    await s.deleteKey(LOG.origin, LOG.vkey)
    expect(levels).toEqual(['on', 'on', 'on', 'on'])
  })
})
