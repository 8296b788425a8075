/**
 * Versioned schema migrations for the PostgreSQL stores (docs/storage.md, PostgreSQL).
 *
 * Every store module exports its schema as an ordered list of {@link MigrationStep}s whose ids are
 * namespaced by area and numbered (`log-0001-files`, `ucan-0001-replay`, …); src/server/migrations.ts
 * concatenates them. {@link migrate} applies, in ONE transaction holding a transaction-level advisory
 * lock, every step whose id is not yet recorded in `schema_migrations`, in list order, and records
 * each. Several instances starting at once on one database therefore apply each step exactly once:
 * the second waits for the lock, then finds the steps recorded. A failing step rolls the whole
 * transaction back (nothing of this run stays applied) and rejects with {@link MigrationError}
 * naming the step. Steps are never edited once released: a change is a new step.
 */
import type pg from 'pg'

/** One schema step: a stable id (never reused) and the SQL it runs (may hold several statements). */
export interface MigrationStep {
  /** `<area>-<4-digit number>-<word>`, e.g. `log-0001-files`; unique across every area. */
  readonly id: string
  /** SQL run as one simple query (several `;`-separated statements allowed; no parameters). */
  readonly sql: string
}

/** A migration step failed; its transaction was rolled back, so no step of this run is applied. */
export class MigrationError extends Error {
  override name = 'MigrationError'
  /** @param step the id of the step that failed. */
  constructor(readonly step: string, cause: unknown) {
    super(`schema migration ${step} failed: ${cause instanceof Error ? cause.message : String(cause)}`)
  }
}

/** The list given to migrate is not well-formed (an id repeats or is not `<area>-<NNNN>-<word>`). Nothing was run. */
export class InvalidMigrationListError extends Error {
  override name = 'InvalidMigrationListError'
}

/** Key of the transaction-level advisory lock serializing migrations (an arbitrary constant: "ucanlog" in ASCII hex, truncated). */
export const MIGRATION_LOCK_KEY = 0x7563616e6c6f67

const ID = /^[a-z]+-\d{4}-[a-z0-9-]+$/

/** What one migrate call did. */
export interface MigrateResult {
  /** Ids applied by this call, in order. */
  readonly applied: string[]
  /** Ids that were already recorded and so skipped. */
  readonly skipped: string[]
}

/**
 * Applies every step of `steps` not yet recorded in `schema_migrations` (created when missing), in
 * list order, in one transaction under `pg_advisory_xact_lock(MIGRATION_LOCK_KEY)`. Idempotent, and
 * safe to call from several processes (several pools) at once.
 * @throws InvalidMigrationListError for a malformed list (before touching the database).
 * @throws MigrationError naming the failed step (rolled back: the database is as before the call).
 * @throws the driver's error when the database cannot be reached.
 */
export async function migrate(pool: pg.Pool, steps: readonly MigrationStep[]): Promise<MigrateResult> {
  const seen = new Set<string>()
  for (const step of steps) {
    if (typeof step.id !== 'string' || !ID.test(step.id)) throw new InvalidMigrationListError(`migration id ${JSON.stringify(step.id)} is not <area>-<NNNN>-<word>`)
    if (seen.has(step.id)) throw new InvalidMigrationListError(`migration id ${step.id} appears twice`)
    seen.add(step.id)
  }
  const client = await pool.connect()
  let broken: Error | undefined
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY])
    // Under the lock: a concurrent first run cannot race this CREATE.
    await client.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         id         text PRIMARY KEY,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    )
    const done = new Set((await client.query<{ id: string }>('SELECT id FROM schema_migrations')).rows.map((r) => r.id))
    const applied: string[] = []
    const skipped: string[] = []
    for (const step of steps) {
      if (done.has(step.id)) {
        skipped.push(step.id)
        continue
      }
      try {
        await client.query(step.sql)
        await client.query('INSERT INTO schema_migrations (id) VALUES ($1)', [step.id])
      } catch (err) {
        throw new MigrationError(step.id, err)
      }
      applied.push(step.id)
    }
    await client.query('COMMIT')
    return { applied, skipped }
  } catch (err) {
    // A connection whose rollback failed is destroyed rather than returned to the pool.
    await client.query('ROLLBACK').catch((e: unknown) => {
      broken = e instanceof Error ? e : new Error(String(e))
    })
    throw err
  } finally {
    client.release(broken)
  }
}
