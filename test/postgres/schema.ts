/**
 * Fixtures for the UCAN-layer and witness store tests on PostgreSQL: a fresh database with the
 * given schema steps applied in order (the stores' exported migration lists), and pools on it.
 */
import pg from 'pg'
import type { PostgresServer } from '../helpers/postgres.js'

/** A schema step as the stores export them. */
export type Step = { readonly id: string; readonly sql: string }

/** A fresh database on `server` with `steps` applied in order; returns its URL. */
export async function databaseWith(server: PostgresServer, steps: readonly Step[]): Promise<string> {
  const url = await server.database()
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    for (const step of steps) await client.query(step.sql)
  } finally {
    await client.end()
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
