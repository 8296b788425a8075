/**
 * Revocations in PostgreSQL (`pg`, node-postgres): the same index as sqlite-revocations.ts — the
 * rows the authorizer queries on every append, each with its revocation-log index once appended
 * (src/server/revocations.ts keeps the two in step) — shared by every instance on one database.
 * Tables `ucan_revocations` and `ucan_revocation_scopes` ({@link REVOCATION_MIGRATIONS}).
 */
import type pg from 'pg'
import type { API } from '@ucanto/core'
import {
  DEFAULT_REVOCATIONS_PER_SCOPE,
  type RevocationIndex,
  type RevocationQuery,
  type RevocationRecord,
  RevocationScopeFull,
  batchedRevocationLookup,
} from './revocation.js'
import { transaction } from './pg-transaction.js'

/**
 * The revocation index's schema as ordered migration steps (applied by the service's migration
 * runner, each once, in list order). Records per scope are kept by a trigger in the transaction of
 * every insert (revocations are never deleted), so the per-scope cap is one keyed lookup.
 */
export const REVOCATION_MIGRATIONS: readonly { readonly id: string; readonly sql: string }[] = [
  {
    id: 'ucan-0002-revocations',
    sql: `
      CREATE TABLE ucan_revocations (
        ucan       text NOT NULL,   -- CID of the revoked UCAN
        scope      text NOT NULL,   -- DID on whose authority it was revoked
        revoker    text NOT NULL,
        invocation text NOT NULL,   -- CID of the ucan/revoke invocation
        time       bigint NOT NULL, -- Unix seconds
        log_index  bigint,          -- entry of the revocation log; NULL until appended
        PRIMARY KEY (ucan, scope)
      );
      CREATE INDEX ucan_revocations_unlogged ON ucan_revocations (time, ucan, scope) WHERE log_index IS NULL;
      CREATE TABLE ucan_revocation_scopes (scope text PRIMARY KEY, n bigint NOT NULL);
      CREATE FUNCTION ucan_revocation_scope_added() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO ucan_revocation_scopes (scope, n) VALUES (NEW.scope, 1)
          ON CONFLICT (scope) DO UPDATE SET n = ucan_revocation_scopes.n + 1;
        RETURN NULL;
      END $$;
      CREATE TRIGGER ucan_revocation_scope_added AFTER INSERT ON ucan_revocations
        FOR EACH ROW EXECUTE FUNCTION ucan_revocation_scope_added();
    `,
  },
]

interface RevocationRow {
  ucan: string
  scope: string
  revoker: string
  invocation: string
  time: string
  log_index: string | null
}

/** Advisory-lock namespace of the per-scope cap check (`pg_advisory_xact_lock(ns, hashtext(scope))`): "ucrv". */
const SCOPE_LOCK = 0x75637276

/**
 * Revocations in PostgreSQL, scoped as `ucan/revoke` (revocation.ts). Takes a pool it does not own;
 * the schema is {@link REVOCATION_MIGRATIONS}. A revocation is effective — for every instance on
 * the database — once {@link record} resolves: it commits with `synchronous_commit = on`. The
 * per-scope cap is checked and the row inserted in one transaction holding a transaction-level
 * advisory lock on the scope, so it holds across instances. `findRevoked` rejects (the caller
 * fails closed) when the database cannot answer.
 */
export class PgRevocations implements RevocationIndex {
  readonly #pool: pg.Pool
  readonly #now: () => number
  readonly #max: number
  readonly #find = batchedRevocationLookup(async (cids) =>
    cids.length === 0 ? [] : (await this.#pool.query<{ ucan: string; scope: string }>('SELECT ucan, scope FROM ucan_revocations WHERE ucan = ANY($1::text[])', [cids])).rows,
  )

  /**
   * @param pool the database (schema {@link REVOCATION_MIGRATIONS} applied).
   * @param now the clock, Unix seconds.
   * @param maxPerScope most records per scope (positive integer); default {@link DEFAULT_REVOCATIONS_PER_SCOPE}.
   * @throws RangeError for a bad `maxPerScope`.
   */
  constructor(pool: pg.Pool, now: () => number, maxPerScope = DEFAULT_REVOCATIONS_PER_SCOPE) {
    if (!Number.isSafeInteger(maxPerScope) || maxPerScope < 1) throw new RangeError('maxRevocationsPerScope must be a positive integer')
    this.#pool = pool
    this.#now = now
    this.#max = maxPerScope
  }

  /**
   * As {@link RevocationChecker.findRevoked}. Lookups made before the event loop's next check phase
   * (all invocations of one request, and of any other request being worked on) are answered
   * together by one statement over every CID they name (`WHERE ucan = ANY($1)`); each resolves to
   * the first CID of its own query revoked by one of its principals. Rejects (all of the batch) if
   * the database cannot answer.
   */
  findRevoked(query: RevocationQuery): Promise<string | undefined> {
    return this.#find(query)
  }

  async record(record: RevocationRecord): Promise<{ record: RevocationRecord; created: boolean; index: number | undefined }> {
    return transaction(this.#pool, async (c) => {
      // Serializes the cap check and insert of one scope across instances (a row lock could not:
      // the scope's count row may not exist yet).
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [SCOPE_LOCK, record.scope])
      const existing = await c.query<RevocationRow>('SELECT * FROM ucan_revocations WHERE ucan = $1 AND scope = $2', [record.ucan, record.scope])
      if (existing.rows[0]) return { record: toRecord(existing.rows[0]), created: false, index: indexOf(existing.rows[0]) }
      const n = await c.query<{ n: string }>('SELECT n FROM ucan_revocation_scopes WHERE scope = $1', [record.scope])
      if (Number(n.rows[0]?.n ?? 0) >= this.#max) throw new RevocationScopeFull(record.scope, this.#max)
      await c.query('INSERT INTO ucan_revocations (ucan, scope, revoker, invocation, time) VALUES ($1, $2, $3, $4, $5)', [
        record.ucan,
        record.scope,
        record.revoker,
        record.invocation,
        record.time,
      ])
      return { record: { ...record }, created: true, index: undefined }
    })
  }

  async restore(record: RevocationRecord, index: number): Promise<boolean> {
    return transaction(this.#pool, async (c) => {
      const r = await c.query(
        `INSERT INTO ucan_revocations (ucan, scope, revoker, invocation, time, log_index) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (ucan, scope) DO NOTHING`,
        [record.ucan, record.scope, record.revoker, record.invocation, record.time, index],
      )
      if (r.rowCount === 1) return true
      await c.query('UPDATE ucan_revocations SET log_index = $1 WHERE ucan = $2 AND scope = $3', [index, record.ucan, record.scope])
      return false
    })
  }

  async logIndex(record: Pick<RevocationRecord, 'ucan' | 'scope'>): Promise<number | undefined> {
    const { rows } = await this.#pool.query<RevocationRow>('SELECT log_index FROM ucan_revocations WHERE ucan = $1 AND scope = $2', [record.ucan, record.scope])
    return rows[0] && indexOf(rows[0])
  }

  async setLogIndex(record: Pick<RevocationRecord, 'ucan' | 'scope'>, index: number): Promise<void> {
    await transaction(this.#pool, (c) => c.query('UPDATE ucan_revocations SET log_index = $1 WHERE ucan = $2 AND scope = $3', [index, record.ucan, record.scope]))
  }

  async unlogged(): Promise<RevocationRecord[]> {
    const { rows } = await this.#pool.query<RevocationRow>('SELECT * FROM ucan_revocations WHERE log_index IS NULL ORDER BY time, ucan, scope')
    return rows.map(toRecord)
  }

  async count(): Promise<number> {
    const { rows } = await this.#pool.query<{ n: string }>('SELECT count(*) AS n FROM ucan_revocations')
    return Number(rows[0]!.n)
  }

  now(): number {
    return this.#now()
  }
}

function indexOf(row: Pick<RevocationRow, 'log_index'>): number | undefined {
  return row.log_index === null ? undefined : Number(row.log_index)
}

function toRecord(row: RevocationRow): RevocationRecord {
  return { ucan: row.ucan, scope: row.scope as API.DID, revoker: row.revoker as API.DID, invocation: row.invocation, time: Number(row.time) }
}
