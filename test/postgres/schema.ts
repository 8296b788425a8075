/**
 * Fixtures for the UCAN-layer and witness store tests on PostgreSQL: a fresh database with the
 * given schema steps applied by the service's migration runner (the stores' exported migration
 * lists), and pools on it.
 */
import pg from 'pg'
import { afterAll, beforeAll } from 'vitest'
import { migrate } from '../../src/storage/postgres/migrate.js'
import { type PostgresServer, startPostgres } from '../helpers/postgres.js'

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

/** Pools opened by a test, ended by {@link Pools.end}. */
export class Pools {
  readonly #pools: pg.Pool[] = []
  /** A new pool on `url` (each stands for one ucanlog process). */
  open(url: string, max = 4): pg.Pool {
    const pool = new pg.Pool({ connectionString: url, max })
    this.#pools.push(pool)
    return pool
  }
  /** Ends every pool opened. */
  async end(): Promise<void> {
    await Promise.all(this.#pools.splice(0).filter((p) => !p.ended).map((p) => p.end()))
  }
}

/**
 * One server for the test file (started in beforeAll, stopped in afterAll after every pool opened
 * through the returned {@link Pools} has ended). Read `server()` inside tests only.
 */
export function serverForFile(): { server(): PostgresServer; pools: Pools } {
  let server: PostgresServer | undefined
  const pools = new Pools()
  beforeAll(async () => {
    server = await startPostgres()
  }, 60_000)
  afterAll(async () => {
    await pools.end()
    await server?.stop()
  })
  return { server: () => server!, pools }
}
