/**
 * One helper of the log storage's PostgreSQL code (lease.ts, pg-upload-queue.ts): a transaction
 * on a pooled connection, with database failures named.
 */
import type pg from 'pg'
import { namedDatabaseError } from './errors.js'

/**
 * Runs `work` in one transaction on a connection of `pool`: commits when it resolves, rolls back
 * when anything fails and rethrows (a connection that cannot be reached or is lost as
 * DatabaseUnavailableError). A connection whose rollback fails is destroyed rather than returned
 * to the pool.
 * @throws DatabaseUnavailableError; what `work` throws.
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient
  try {
    client = await pool.connect()
  } catch (err) {
    throw namedDatabaseError(err)
  }
  let broken: Error | undefined
  try {
    await client.query('BEGIN')
    const out = await work(client)
    await client.query('COMMIT')
    return out
  } catch (err) {
    await client.query('ROLLBACK').catch((e: unknown) => {
      broken = e instanceof Error ? e : new Error(String(e))
    })
    throw namedDatabaseError(err)
  } finally {
    client.release(broken)
  }
}
