/**
 * Witness state in PostgreSQL (`pg`, node-postgres): the same {@link WitnessStore} as
 * SqliteWitnessStore, for witness processes sharing one database. c2sp.org/tlog-witness requires
 * the update of a log's latest size to be a compare-and-swap on (origin, old size), durable before
 * the witness replies: here it is one `UPDATE … WHERE origin = $ AND tree_size = $` committed with
 * `synchronous_commit = on` (whatever the server's default), so two witness processes racing on one
 * database see exactly one `true`, and a trigger refuses any update that would lower a size.
 */
import type pg from 'pg'
import { EMPTY_ROOT } from '../src/tlog/hash.js'
import { ed25519Verifier, parseVerifierKey } from '../src/tlog/note.js'
import type { WitnessLog, WitnessStore } from './store.js'

/**
 * The witness's schema as ordered migration steps (applied by the service's migration runner, in
 * list order, each once; tables prefixed `witness_`). Steps are never edited once released.
 */
export const WITNESS_MIGRATIONS: readonly { readonly id: string; readonly sql: string }[] = [
  {
    id: 'witness-0001-state',
    sql: `
      CREATE TABLE witness_log (
        origin     text PRIMARY KEY,
        tree_size  bigint NOT NULL CHECK (tree_size >= 0),
        root_hash  bytea NOT NULL CHECK (octet_length(root_hash) = 32), -- RFC 6962 root
        checkpoint text                                                  -- log-signed note last cosigned; NULL before the first
      );
      CREATE TABLE witness_key (
        origin text NOT NULL REFERENCES witness_log (origin),
        vkey   text NOT NULL,                                            -- signed-note verifier key, type 0x01
        PRIMARY KEY (origin, vkey)
      );
      -- Defence in depth for operator tools: a witness never rolls a log back.
      CREATE FUNCTION witness_size_never_decreases() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.tree_size < OLD.tree_size THEN
          RAISE EXCEPTION 'witness: a log''s tree size must never decrease';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER witness_log_size_never_decreases BEFORE UPDATE OF tree_size ON witness_log
        FOR EACH ROW EXECUTE FUNCTION witness_size_never_decreases();
    `,
  },
]

interface LogRow {
  origin: string
  tree_size: string
  root_hash: Buffer
  checkpoint: string | null
  keys: string[]
}

/** One log with its keys (sorted), read in one statement: a consistent snapshot. */
const SELECT_LOGS = `
  SELECT l.origin, l.tree_size, l.root_hash, l.checkpoint,
         coalesce(array_agg(k.vkey ORDER BY k.vkey) FILTER (WHERE k.vkey IS NOT NULL), '{}') AS keys
    FROM witness_log l LEFT JOIN witness_key k ON k.origin = l.origin`

/**
 * {@link WitnessStore} on PostgreSQL. Takes a pool it does not own (never ends it); the schema is
 * {@link WITNESS_MIGRATIONS}, applied before use. Every method is asynchronous; mutations commit
 * with `synchronous_commit = on` before they resolve. Safe with several processes (several pools)
 * on one database: compare-and-swap is one conditional UPDATE, key changes lock their log's row.
 * Driver errors (database unreachable, schema missing) reject the call; the HTTP layer answers 500.
 */
export class PgWitnessStore implements WitnessStore {
  readonly #pool: pg.Pool

  /** @param pool the database (schema {@link WITNESS_MIGRATIONS} applied). */
  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async getLog(origin: string): Promise<WitnessLog | undefined> {
    const { rows } = await this.#pool.query<LogRow>(`${SELECT_LOGS} WHERE l.origin = $1 GROUP BY l.origin`, [origin])
    return rows[0] && toLog(rows[0])
  }

  async compareAndSwap(origin: string, oldSize: number, newSize: number, rootHash: Uint8Array, checkpoint: string): Promise<boolean> {
    if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 0 || newSize < oldSize) {
      throw new RangeError(`witness: refusing to move a log from size ${oldSize} to ${newSize}`)
    }
    if (!(rootHash instanceof Uint8Array) || rootHash.length !== 32) throw new RangeError('witness: root hash must be 32 bytes')
    // The WHERE on tree_size is what prevents a rollback when two requests with the same old size
    // race, in this process or another (c2sp.org/tlog-witness §add-checkpoint).
    return this.#durably(async (c) => {
      const r = await c.query('UPDATE witness_log SET tree_size = $1, root_hash = $2, checkpoint = $3 WHERE origin = $4 AND tree_size = $5', [
        newSize,
        Buffer.from(rootHash),
        checkpoint,
        origin,
        oldSize,
      ])
      return r.rowCount === 1
    })
  }

  async addLog(origin: string): Promise<boolean> {
    if (typeof origin !== 'string' || origin === '' || /[\u0000-\u001f]/.test(origin)) {
      throw new Error('witness: a log origin must be a non-empty line without control characters')
    }
    return this.#durably(async (c) => {
      const r = await c.query(
        'INSERT INTO witness_log (origin, tree_size, root_hash, checkpoint) VALUES ($1, 0, $2, NULL) ON CONFLICT (origin) DO NOTHING',
        [origin, Buffer.from(EMPTY_ROOT)],
      )
      return r.rowCount === 1
    })
  }

  async addKey(origin: string, vkey: string): Promise<boolean> {
    const canonical = ed25519Verifier(vkey).vkey // throws MalformedKeyError unless a valid 0x01 vkey
    const { name, keyId } = parseVerifierKey(canonical)
    return this.#durably(async (c) => {
      // The log's row locked: two processes adding keys to one log are serialized.
      const log = await c.query('SELECT 1 FROM witness_log WHERE origin = $1 FOR UPDATE', [origin])
      if (log.rowCount !== 1) throw new Error(`witness: unknown log ${JSON.stringify(origin)}`)
      const keys = await c.query<{ vkey: string }>('SELECT vkey FROM witness_key WHERE origin = $1', [origin])
      for (const { vkey: other } of keys.rows) {
        if (other === canonical) return false
        const o = parseVerifierKey(other)
        if (o.name === name && o.keyId === keyId) {
          throw new Error(`witness: log ${JSON.stringify(origin)} already has a different key named ${name} with key ID ${keyId.toString(16).padStart(8, '0')}`)
        }
      }
      await c.query('INSERT INTO witness_key (origin, vkey) VALUES ($1, $2)', [origin, canonical])
      return true
    })
  }

  async deleteKey(origin: string, vkey: string): Promise<boolean> {
    return this.#durably(async (c) => ((await c.query('DELETE FROM witness_key WHERE origin = $1 AND vkey = $2', [origin, vkey])).rowCount ?? 0) > 0)
  }

  async listLogs(): Promise<WitnessLog[]> {
    const { rows } = await this.#pool.query<LogRow>(`${SELECT_LOGS} GROUP BY l.origin ORDER BY l.origin`)
    return rows.map(toLog)
  }

  /** Runs `work` in a transaction committed with `synchronous_commit = on`; rolls back if it throws. */
  async #durably<T>(work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.#pool.connect()
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
}

function toLog(row: LogRow): WitnessLog {
  return {
    origin: row.origin,
    treeSize: Number(row.tree_size),
    rootHash: new Uint8Array(row.root_hash),
    checkpoint: row.checkpoint,
    keys: row.keys,
  }
}

