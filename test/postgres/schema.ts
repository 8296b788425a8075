/**
 * Fixtures for the UCAN-layer and witness store tests on PostgreSQL: a fresh database with the
 * given schema steps applied by the service's migration runner (the stores' exported migration
 * lists).
 */
import pg from 'pg'
import { migrate } from '../../src/storage/postgres/migrate.js'
import type { PostgresServer } from '../helpers/postgres.js'

/** A schema step as the stores export them. */
export type Step = { readonly id: string; readonly sql: string }

/** A fresh database on `server` with `steps` applied (src/storage/postgres/migrate.ts); returns its URL. */
export async function databaseWith(server: PostgresServer, steps: readonly Step[]): Promise<string> {
  const url = await server.database()
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  try {
    await migrate(pool, steps)
  } finally {
    await pool.end()
  }
  return url
}
