/**
 * One helper of the UCAN layer's PostgreSQL stores (pg-replay.ts, pg-revocations.ts): a
 * transaction on a pooled connection whose commit is durable before it resolves.
 */
import type pg from 'pg'

/**
 * Runs `work` in a transaction on a connection of `pool`, committed with `synchronous_commit = on`
 * (durable — flushed, and on synchronous standbys — before this resolves, whatever the server's
 * default); rolled back if `work` throws, and the error rethrown. A connection whose rollback
 * fails is destroyed rather than returned to the pool.
 */
export async function durably<T>(pool: pg.Pool, work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect()
  let broken: Error | undefined
  try {
    await c.query('BEGIN; SET LOCAL synchronous_commit TO on')
    const result = await work(c)
    await c.query('COMMIT')
    return result
  } catch (err) {
    await c.query('ROLLBACK').catch((e: unknown) => (broken = e instanceof Error ? e : new Error(String(e))))
    throw err
  } finally {
    c.release(broken)
  }
}
