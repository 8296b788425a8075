/**
 * The schema migrations runner (src/storage/postgres/migrate.ts) on a real PostgreSQL server:
 * concurrent runs from several pools apply each step exactly once, a failing step rolls back the
 * whole run and is named, and a re-run skips what is recorded.
 */
import { describe, expect, it } from 'vitest'
import { InvalidMigrationListError, migrate, MigrationError, type MigrationStep } from '../../src/storage/postgres/migrate.js'
import { usePostgres } from '../helpers/postgres.js'

describe('migrate (PostgreSQL schema migrations)', () => {
  const pg = usePostgres()
  const server = { database: () => pg.server().database() }
  const pool = (url: string) => pg.pool(url, 2)

  // Each step counts its own runs in a table without a uniqueness constraint: a second run of a
  // step would add a second row (and the CREATE TABLE step would fail outright).
  const STEPS: MigrationStep[] = [
    { id: 'test-0001-runs', sql: 'CREATE TABLE test_runs (step text NOT NULL)' },
    { id: 'test-0002-one', sql: "INSERT INTO test_runs VALUES ('test-0002-one'); SELECT pg_sleep(0.05)" },
    { id: 'test-0003-two', sql: "INSERT INTO test_runs VALUES ('test-0003-two')" },
  ]

  it('applies each step exactly once when three instances migrate one fresh database at once', async () => {
    const url = await server.database()
    const [a, b, c] = [pool(url), pool(url), pool(url)]
    const results = await Promise.all([migrate(a, STEPS), migrate(b, STEPS), migrate(c, STEPS)])
    // Exactly one run applied every step; the others found them recorded.
    const applied = results.flatMap((r) => r.applied).sort()
    expect(applied).toEqual(STEPS.map((s) => s.id).sort())
    expect(results.filter((r) => r.applied.length === STEPS.length)).toHaveLength(1)
    const runs = await a.query('SELECT step FROM test_runs ORDER BY step')
    expect(runs.rows.map((r) => r.step)).toEqual(['test-0002-one', 'test-0003-two'])
    const recorded = await a.query('SELECT id FROM schema_migrations ORDER BY id')
    expect(recorded.rows.map((r) => r.id)).toEqual(STEPS.map((s) => s.id))
    // A later run with one more step applies only the new one.
    const more = [...STEPS, { id: 'test-0004-three', sql: "INSERT INTO test_runs VALUES ('test-0004-three')" }]
    expect(await migrate(b, more)).toEqual({ applied: ['test-0004-three'], skipped: STEPS.map((s) => s.id) })
    expect((await a.query('SELECT count(*)::int AS n FROM test_runs')).rows[0].n).toBe(3)
  })

  it('rolls a failing step back with everything else of its run, naming the step', async () => {
    const url = await server.database()
    const p = pool(url)
    const bad: MigrationStep[] = [...STEPS, { id: 'test-0004-broken', sql: 'INSERT INTO no_such_table VALUES (1)' }]
    const err = await migrate(p, bad).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(MigrationError)
    expect(err).toMatchObject({ name: 'MigrationError', step: 'test-0004-broken' })
    expect((err as Error).message).toMatch(/test-0004-broken.*no_such_table/)
    // Nothing of that run stayed: not the earlier steps' tables, not their records.
    const tables = await p.query("SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'test_runs'")
    expect(tables.rows[0].n).toBe(0)
    // (not even the schema_migrations table this first run created)
    expect((await p.query("SELECT to_regclass('schema_migrations') AS t")).rows[0].t).toBeNull()
    // The pool is still usable, and the fixed list applies.
    expect((await migrate(p, STEPS)).applied).toEqual(STEPS.map((s) => s.id))
  })

  it('refuses a malformed list before touching the database', async () => {
    const url = await server.database()
    const p = pool(url)
    await expect(migrate(p, [STEPS[0]!, STEPS[0]!])).rejects.toBeInstanceOf(InvalidMigrationListError)
    await expect(migrate(p, [{ id: 'runs', sql: 'SELECT 1' }])).rejects.toBeInstanceOf(InvalidMigrationListError)
    expect((await p.query("SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'schema_migrations'")).rows[0].n).toBe(0)
  })
})
