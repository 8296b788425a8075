/**
 * PgRevocations (src/ucan/pg-revocations.ts): the RevocationIndex conformance suite on a real
 * PostgreSQL server, and two instances (two pools) on one database: a revocation recorded by one
 * is effective for the other at once, the per-scope cap holds across instances, and a database
 * that cannot answer makes lookups reject (the authorizer fails closed).
 */
import pg from 'pg'
import { describe, expect, test } from 'vitest'
import { PgRevocations, REVOCATION_MIGRATIONS, RevocationScopeFull } from '../../src/ucan/index.js'
import { query, revocation, revocationIndexConformance } from '../ucan/revocations-conformance.js'
import { usePostgres } from '../helpers/postgres.js'
import { databaseWith } from './schema.js'

const db = usePostgres()

revocationIndexConformance('PgRevocations', async ({ now, maxPerScope }) => {
  const pool = db.pool(await databaseWith(db.server(), REVOCATION_MIGRATIONS))
  return { store: new PgRevocations(pool, now, maxPerScope), close() {} }
})

describe('PgRevocations: two instances on one database', () => {
  test('a revocation recorded through one is effective through the other as soon as record resolves; idempotent across them', async () => {
    const url = await databaseWith(db.server(), REVOCATION_MIGRATIONS)
    const a = new PgRevocations(db.pool(url), () => 1000)
    const b = new PgRevocations(db.pool(url), () => 1000)
    expect(await b.findRevoked(query([['bafyA', ['did:key:z6MkScope']]]))).toBeUndefined()
    expect(await a.record(revocation('bafyA'))).toMatchObject({ created: true })
    expect(await b.findRevoked(query([['bafyA', ['did:key:z6MkScope']]]))).toBe('bafyA')
    expect(await b.record(revocation('bafyA'))).toMatchObject({ created: false })
    await b.setLogIndex(revocation('bafyA'), 0)
    expect(await a.logIndex(revocation('bafyA'))).toBe(0)
    expect(await a.unlogged()).toEqual([])
  })

  test('the per-scope cap holds when both record at once: exactly the cap is created, the rest RevocationScopeFull', async () => {
    const url = await databaseWith(db.server(), REVOCATION_MIGRATIONS)
    const a = new PgRevocations(db.pool(url), () => 1000, 3)
    const b = new PgRevocations(db.pool(url), () => 1000, 3)
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).record(revocation(`bafy${i}`))))
    const created = results.filter((r) => r.status === 'fulfilled')
    expect(created).toHaveLength(3)
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(RevocationScopeFull)
    expect(await a.count()).toBe(3)
    // The same (ucan, scope) recorded by both at once: one row, one `created`.
    const same = await Promise.all([a.record(revocation('bafySame', 'did:key:z6MkOther')), b.record(revocation('bafySame', 'did:key:z6MkOther'))])
    expect(same.map((r) => r.created).sort()).toEqual([false, true])
    expect(await b.count()).toBe(4)
  })

  test('a database that cannot answer: lookups reject (fail closed) and nothing is recorded', async () => {
    const pool = new pg.Pool({ connectionString: await databaseWith(db.server(), REVOCATION_MIGRATIONS) }) // ended here, not by the file's afterAll
    const s = new PgRevocations(pool, () => 1000)
    await pool.end()
    await expect(s.findRevoked(query([['bafyA', ['did:key:z6MkScope']]]))).rejects.toThrow()
    await expect(s.record(revocation('bafyA'))).rejects.toThrow()
  })
})
