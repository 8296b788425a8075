/**
 * One helper of the UCAN layer's PostgreSQL stores (pg-replay.ts, pg-revocations.ts): a
 * transaction on a pooled connection.
 */
import type pg from 'pg'

/**
 * Runs `work` in a transaction on a connection of `pool` and commits it. With `durable` (the
 * default) the commit uses `synchronous_commit = on` — flushed, and on any synchronous standby,
 * before this resolves, whatever the server's default; without, the server's setting applies.
 * Rolled back if `work` throws, and the error rethrown. A connection whose rollback fails is
 * destroyed rather than returned to the pool.
 */
export async function transaction<T>(pool: pg.Pool, work: (c: pg.PoolClient) => Promise<T>, durable = true): Promise<T> {
  const c = await pool.connect()
  let broken: Error | undefined
  try {
    await c.query(durable ? 'BEGIN; SET LOCAL synchronous_commit TO on' : 'BEGIN')
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
