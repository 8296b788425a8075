/**
 * The PostgreSQL test harness (test/helpers/postgres.ts) starts a real server on loopback that the
 * PostgreSQL backend's tests share: separate databases are isolated, data committed by one client
 * is seen by another, and stop() removes the server.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PostgresServer, startPostgres } from '../helpers/postgres.js'

describe('PostgreSQL test harness', () => {
  let server: PostgresServer
  beforeAll(async () => {
    server = await startPostgres()
  }, 60_000)
  afterAll(async () => {
    await server?.stop()
  })

  it('serves isolated databases on loopback', async () => {
    expect(server.url).toMatch(/^postgres:\/\/ucanlog@127\.0\.0\.1:\d+\/postgres$/)
    const [a, b] = [await server.database(), await server.database()]
    expect(a).not.toBe(b)
    const one = new pg.Client({ connectionString: a })
    const other = new pg.Client({ connectionString: a })
    const third = new pg.Client({ connectionString: b })
    await Promise.all([one.connect(), other.connect(), third.connect()])
    try {
      await one.query('CREATE TABLE t (v bytea NOT NULL)')
      await one.query('INSERT INTO t VALUES ($1)', [Buffer.from([0, 1, 255])])
      const seen = await other.query('SELECT v FROM t')
      expect(seen.rows.map((r) => [...(r.v as Buffer)])).toEqual([[0, 1, 255]])
      await expect(third.query('SELECT v FROM t')).rejects.toThrow(/does not exist/)
      const version = await one.query('SHOW server_version_num')
      expect(Number(version.rows[0].server_version_num)).toBeGreaterThanOrEqual(120000)
    } finally {
      await Promise.all([one.end(), other.end(), third.end()])
    }
  })

  it('refuses a database name that is not a plain identifier', async () => {
    await expect(server.database('x; DROP DATABASE postgres')).rejects.toThrow(/plain database name/)
  })
})
