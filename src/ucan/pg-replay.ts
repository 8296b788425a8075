/**
 * The replay guard in PostgreSQL (`pg`, node-postgres), shared by every instance on one database:
 * the same semantics as the SQLite guard (sqlite-replay.ts) — first call runs the task, every call
 * with that id, concurrent or later, in this process or in another instance, resolves to the first
 * outcome; per-owner shares; expiry; outcomes durable before they are returned — with claims made
 * by a database transaction instead of a process-local file.
 *
 * Tables `ucan_replay` (one row per claimed id: owner, expiry, outcome JSON or NULL while pending,
 * and the claiming instance) and `ucan_replay_owners` (ids per owner), {@link REPLAY_MIGRATIONS}.
 *
 * Across instances:
 * - **Claim.** The calls made before the event loop's next check phase are admitted in one
 *   transaction that takes a transaction-level advisory lock per owner (in a fixed order, so
 *   batches never deadlock), forgets the owners' expired ids, checks each owner's share and
 *   inserts the new ids (`INSERT … ON CONFLICT DO NOTHING`). Only the instance whose insert
 *   committed runs the task.
 * - **Outcome.** Outcomes settled in one event-loop turn are written in one transaction committed
 *   with `synchronous_commit = on` before any is returned, and announced with `NOTIFY ucan_replay`.
 * - **Waiting.** A call finding another instance's claim without an outcome waits for it (woken by
 *   the notification, or by polling every `pollMs` in case one was missed) up to `waitMs`, then
 *   rejects with {@link ReplayPending}: nothing ran here; the client resends the same invocation
 *   later and gets the first outcome.
 * - **Dead claimers.** Each guard holds, on one pooled connection it keeps, a session-level
 *   advisory lock naming its instance: the lock is released by PostgreSQL when the process (or its
 *   connection) dies. A pending claim whose instance holds no lock any more may have appended its
 *   entry, or not: it resolves to {@link UNKNOWN_OUTCOME} and is never run again (as the SQLite
 *   guard after a crash), so no entry is ever appended twice. A paused instance keeps its lock:
 *   its claims are waited for, and its late outcome, if it ever comes, is the one remembered.
 */
import { randomInt } from 'node:crypto'
import { setImmediate } from 'node:timers'
import type pg from 'pg'
import { forgettingClockOf } from './clock.js'
import { transaction } from './pg-transaction.js'
import { AdmitQueue, DEFAULT_REPLAY_PER_SPACE, type PendingAdmit, type ReplayGuard, ReplayGuardFull, ReplayPending, type ReplayKey, checkReplayShare } from './replay.js'
import { UNKNOWN_OUTCOME } from './sqlite-replay.js'

/**
 * The replay guard's schema as ordered migration steps (applied by the service's migration
 * runner, each once, in list order; tables prefixed `ucan_`).
 */
export const REPLAY_MIGRATIONS: readonly { readonly id: string; readonly sql: string }[] = [
  {
    id: 'ucan-0001-replay',
    sql: `
      CREATE TABLE ucan_replay (
        id         text PRIMARY KEY,  -- the invocation's CID
        owner      text NOT NULL,     -- the space whose share it takes
        expires_at bigint NOT NULL,   -- Unix seconds, inclusive (the invocation's exp)
        outcome    text,              -- the outcome's JSON; NULL while its run is pending
        claimed_by integer NOT NULL   -- the claiming instance (its liveness advisory lock's key)
      );
      CREATE INDEX ucan_replay_owner_expiry ON ucan_replay (owner, expires_at);
      CREATE INDEX ucan_replay_expiry ON ucan_replay (expires_at);
      CREATE TABLE ucan_replay_owners (owner text PRIMARY KEY, n bigint NOT NULL CHECK (n >= 0));
    `,
  },
]

/** Advisory-lock namespace of the per-owner admission locks (`pg_advisory_xact_lock(ns, hashtext(owner))`): "ucrp". */
const OWNER_LOCK = 0x75637270
/** Advisory-lock namespace of the instances' liveness locks (session-level, key = instance): "ucri". */
const LIVE_LOCK = 0x75637269
/** The NOTIFY channel announcing settled ids (payload: ids separated by newlines). */
const CHANNEL = 'ucan_replay'
/** Longest NOTIFY payload sent, in bytes (PostgreSQL's limit is 8000). */
const MAX_PAYLOAD = 7000
/** Most expired ids of one owner forgotten per admission, so one after a long stop stays short. */
const MAX_FORGET = 10_000
/** Most owners swept of expired ids per background sweep. */
const MAX_SWEEP_OWNERS = 100
/** SQLSTATEs after which a transaction is simply run again: serialization failure, deadlock. */
const RETRY = new Set(['40001', '40P01'])

/** Options of {@link PgReplayGuard.open}. */
export interface PgReplayGuardOptions {
  /** Clock, Unix seconds; default the system clock (guarded as clock.ts forgettingClockOf). */
  now?: () => number
  /** Monotonic seconds for the forgetting clock, with `now`. */
  monotonic?: () => number
  /** Most unexpired ids per owner; default {@link DEFAULT_REPLAY_PER_SPACE}. */
  maxReplayPerOwner?: number
  /** Longest wait, in ms, for another instance's pending claim before {@link ReplayPending}; default 10,000. */
  waitMs?: number
  /** Re-reads a claim waited for at least this often, in ms (a missed notification); default 500. */
  pollMs?: number
}

type Decision = { run: true } | { answer: unknown } | { full: true } | { wait: true }

/** What {@link PgReplayGuard} `#wait` answers when the claim waited for is gone: admit the call again. */
const AGAIN = Symbol('again')

type Admit = PendingAdmit

interface Settled {
  id: string
  json: string
  resolve(): void
  reject(err: unknown): void
}

interface Row {
  id: string
  owner: string
  expires_at: string
  outcome: string | null
  claimed_by: number
}

/**
 * A durable {@link ReplayGuard} on PostgreSQL, correct with several instances (several pools) on
 * one database (see the module comment). Takes a pool it does not own, and keeps one of its
 * connections for as long as it is open (its liveness lock and `LISTEN`). Outcomes must be plain
 * JSON data. A task that rejects is forgotten (its id may run again). Driver errors (database
 * unreachable) reject the calls they concern; nothing runs without its claim committed.
 */
export class PgReplayGuard implements ReplayGuard {
  readonly #pool: pg.Pool
  readonly #now: () => number
  readonly #max: number
  readonly #waitMs: number
  readonly #pollMs: number
  /** This instance's key: its liveness lock, and `claimed_by` of its claims. */
  readonly instance: number
  /** The kept connection (liveness lock, LISTEN); undefined once lost, until {@link #reconnect}. */
  #listener: pg.PoolClient | undefined
  #reconnecting: Promise<void> | undefined
  /** Ids waited for (another instance's claims) → wake-ups of their waiters. */
  readonly #waiters = new Map<string, Set<() => void>>()
  readonly #admits = new AdmitQueue(() => void this.#admitBatch())
  #settled: Settled[] = []
  #settleScheduled = false
  #lookups: { id: string; resolve(row: Row | undefined): void; reject(err: unknown): void }[] = []
  #nextSweep = -Infinity
  #closed = false

  private constructor(pool: pg.Pool, instance: number, options: PgReplayGuardOptions) {
    this.#pool = pool
    this.instance = instance
    this.#now = forgettingClockOf(options)
    this.#max = checkReplayShare(options.maxReplayPerOwner ?? DEFAULT_REPLAY_PER_SPACE)
    this.#waitMs = options.waitMs ?? 10_000
    this.#pollMs = options.pollMs ?? 500
  }

  /**
   * Opens the guard on `pool` (schema {@link REPLAY_MIGRATIONS} applied): takes a connection,
   * its liveness lock under a fresh random instance key, and `LISTEN ucan_replay`.
   * @throws RangeError for a bad share; the driver's error when the database cannot be reached.
   */
  static async open(pool: pg.Pool, options: PgReplayGuardOptions = {}): Promise<PgReplayGuard> {
    checkReplayShare(options.maxReplayPerOwner ?? DEFAULT_REPLAY_PER_SPACE)
    const client = await pool.connect()
    try {
      for (;;) {
        const instance = randomInt(1, 2 ** 31)
        const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LIVE_LOCK, instance])
        if (!rows[0]!.ok) continue // a live instance has this key
        const guard = new PgReplayGuard(pool, instance, options)
        await guard.#listen(client)
        return guard
      }
    } catch (err) {
      client.release(err instanceof Error ? err : true)
      throw err
    }
  }

  async #listen(client: pg.PoolClient): Promise<void> {
    client.on('notification', (n) => {
      if (n.channel !== CHANNEL || !n.payload) return
      for (const id of n.payload.split('\n')) for (const wake of this.#waiters.get(id) ?? []) wake()
    })
    // A lost connection loses the liveness lock too: other instances then answer this one's
    // pending claims UNKNOWN_OUTCOME (never a second run; a run that finishes still stores its
    // outcome). Waiters fall back to polling; the next admission takes the lock again.
    client.on('error', (err) => {
      if (this.#listener !== client) return
      this.#listener = undefined
      client.release(err)
    })
    await client.query(`LISTEN ${CHANNEL}`)
    this.#listener = client
  }

  /**
   * Takes a connection, this instance's liveness lock (same key: its claims name it) and LISTEN
   * again after the kept connection was lost (the database restarted, a network cut).
   * @throws when the database cannot be reached, or another instance took the key meanwhile.
   */
  #reconnect(): Promise<void> {
    this.#reconnecting ??= (async () => {
      const client = await this.#pool.connect()
      try {
        const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LIVE_LOCK, this.instance])
        if (!rows[0]!.ok) throw new Error('the replay guard lost its database connection and its instance key is taken; restart the instance')
        await this.#listen(client)
      } catch (err) {
        client.release(err instanceof Error ? err : true)
        throw err
      }
    })().finally(() => {
      this.#reconnecting = undefined
    })
    return this.#reconnecting
  }

  once<T>(key: ReplayKey, task: () => Promise<T>): Promise<T> {
    if (this.#closed && !this.#admits.inFlight.has(key.id)) return Promise.reject(new Error('the replay guard is closed'))
    return this.#admits.join(key, task)
  }

  /**
   * The outcome of `id` in this process's flight, or a promise of what the database remembers:
   * the outcome while unexpired, {@link UNKNOWN_OUTCOME} for a claim whose instance died, and
   * undefined for an id not remembered (or pending in a live instance: the caller then goes
   * through {@link once}, which waits for it). Lookups of one event-loop turn are one statement.
   * Starts nothing, charges no share.
   */
  seen<T>(id: string): Promise<T | undefined> | undefined {
    const flying = this.#admits.inFlight.get(id)
    if (flying !== undefined) return flying as Promise<T>
    if (this.#closed) return undefined
    const known = this.#lookup(id).then(async (row) => {
      if (row === undefined || Number(row.expires_at) < this.#now()) return undefined
      if (row.outcome !== null) return JSON.parse(row.outcome) as T
      return (await this.#alive(row.claimed_by)) ? undefined : (UNKNOWN_OUTCOME as T)
    })
    known.catch(() => {}) // a caller that decides not to wait for it must not leave a rejection unhandled
    return known
  }

  /**
   * Whether the guard holds its kept connection (its liveness lock): false from the moment the
   * driver reports it lost until the next admission takes it again. Claims made without it are
   * answered UNKNOWN_OUTCOME by the other instances (never run twice). For health and tests.
   */
  get connected(): boolean {
    return this.#listener !== undefined
  }

  /** Ids of `owner` remembered (unexpired, or expired but not yet forgotten). */
  async count(owner: string): Promise<number> {
    const { rows } = await this.#pool.query<{ n: string }>('SELECT n FROM ucan_replay_owners WHERE owner = $1', [owner])
    return Number(rows[0]?.n ?? 0)
  }

  /**
   * Admits pending calls and commits pending outcomes, waits for the runs in flight, then gives
   * back the kept connection (releasing the liveness lock). Later calls reject.
   */
  async close(): Promise<void> {
    while (this.#admits.size > 0 || this.#settled.length > 0 || this.#admits.inFlight.size > 0) {
      await Promise.allSettled([this.#admitBatch(), this.#settleBatch(), ...this.#admits.inFlight.values()])
    }
    this.#closed = true
    const client = this.#listener
    this.#listener = undefined
    if (client) {
      try {
        await client.query(`UNLISTEN ${CHANNEL}`)
        await client.query('SELECT pg_advisory_unlock($1, $2)', [LIVE_LOCK, this.instance])
        client.release()
      } catch (err) {
        client.release(err instanceof Error ? err : true) // destroyed: its lock goes with it
      }
    }
  }

  /** Admits every pending {@link once} in one transaction, then starts, answers or refuses each. */
  async #admitBatch(): Promise<void> {
    const batch = this.#admits.take()
    if (batch.length === 0) return
    let decided: Decision[]
    try {
      if (this.#listener === undefined) await this.#reconnect()
      decided = await retrying(() => transaction(this.#pool, (c) => this.#admit(c, batch), false))
    } catch (err) {
      for (const b of batch) b.reject(err)
      return
    }
    batch.forEach((b, i) => {
      const d = decided[i]!
      if ('run' in d) this.#run(b)
      else if ('answer' in d) b.resolve(d.answer)
      else if ('full' in d) b.reject(new ReplayGuardFull(b.key.owner, this.#max))
      else this.#wait(b.key).then((r) => (r === AGAIN ? this.#requeue(b) : b.resolve(r.value)), b.reject)
    })
    const t = this.#now()
    if (t >= this.#nextSweep) {
      this.#nextSweep = t + 1
      void this.#sweep(t).catch(() => {}) // best effort: shares stay exact without it (see #admit)
    }
  }

  /** The admission transaction of a batch (on `c`, inside BEGIN … COMMIT). */
  async #admit(c: pg.PoolClient, batch: readonly Admit[]): Promise<Decision[]> {
    const t = this.#now()
    const { counts, delta } = await this.#lockOwners(c, [...new Set(batch.map((b) => b.key.owner))], t)
    const { rows } = await c.query<Row>('SELECT id, owner, expires_at, outcome, claimed_by FROM ucan_replay WHERE id = ANY($1::text[])', [batch.map((b) => b.key.id)])
    const byId = new Map(rows.map((r) => [r.id, r]))
    const expired: string[] = []
    const claims: ReplayKey[] = []
    const decided: Decision[] = []
    for (const b of batch) {
      const row = byId.get(b.key.id)
      if (row !== undefined && Number(row.expires_at) >= t) {
        if (row.outcome !== null) decided.push({ answer: JSON.parse(row.outcome) })
        // This instance's own claim with no run in flight here: its run failed to store an
        // outcome (or it is a dead predecessor's with the same key). Never run it again.
        else if (row.claimed_by === this.instance) decided.push({ answer: UNKNOWN_OUTCOME })
        else decided.push({ wait: true })
        continue
      }
      // Expired, yet not forgotten by #lockOwners: its row names another owner than this call.
      if (row !== undefined) {
        expired.push(row.id)
        delta.set(row.owner, (delta.get(row.owner) ?? 0) - 1)
      }
      const n = counts.get(b.key.owner)!
      if (n >= this.#max) {
        decided.push({ full: true })
        continue
      }
      counts.set(b.key.owner, n + 1)
      claims.push(b.key)
      decided.push({ run: true })
    }
    if (expired.length > 0) await c.query('DELETE FROM ucan_replay WHERE id = ANY($1::text[])', [expired])
    const inserted = new Set<string>()
    if (claims.length > 0) {
      const r = await c.query<{ id: string }>(
        `INSERT INTO ucan_replay (id, owner, expires_at, claimed_by)
           SELECT id, owner, expires_at, $4 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(id, owner, expires_at)
           ON CONFLICT (id) DO NOTHING RETURNING id`,
        [claims.map((k) => k.id), claims.map((k) => k.owner), claims.map((k) => (Number.isFinite(k.expiresAt) ? Math.ceil(k.expiresAt) : Number.MAX_SAFE_INTEGER)), this.instance],
      )
      for (const { id } of r.rows) inserted.add(id)
    }
    batch.forEach((b, i) => {
      if (!('run' in decided[i]!)) return
      // Claimed meanwhile under another owner's lock (an id reused across owners): wait for it.
      if (inserted.has(b.key.id)) delta.set(b.key.owner, (delta.get(b.key.owner) ?? 0) + 1)
      else decided[i] = { wait: true }
    })
    await this.#addCounts(c, delta)
    return decided
  }

  /** Adds `delta` (owner → change) to the owners' counts, dropping counts that reach 0. Relative, so safe without the owner's lock. */
  async #addCounts(c: pg.PoolClient, delta: ReadonlyMap<string, number>): Promise<void> {
    const changed = [...delta].filter(([, d]) => d !== 0)
    if (changed.length === 0) return
    const owners = changed.map(([o]) => o)
    const up = changed.filter(([, d]) => d > 0)
    const down = changed.filter(([, d]) => d < 0)
    // Separately: an upsert's candidate row (a negative n) would fail the table's CHECK.
    if (up.length > 0) {
      await c.query(
        `INSERT INTO ucan_replay_owners (owner, n) SELECT * FROM unnest($1::text[], $2::bigint[])
           ON CONFLICT (owner) DO UPDATE SET n = ucan_replay_owners.n + EXCLUDED.n`,
        [up.map(([o]) => o), up.map(([, d]) => d)],
      )
    }
    if (down.length > 0) {
      await c.query('UPDATE ucan_replay_owners o SET n = o.n + u.d FROM unnest($1::text[], $2::bigint[]) AS u(owner, d) WHERE o.owner = u.owner', [
        down.map(([o]) => o),
        down.map(([, d]) => d),
      ])
    }
    await c.query('DELETE FROM ucan_replay_owners WHERE owner = ANY($1::text[]) AND n = 0', [owners])
  }

  /**
   * Takes the owners' admission locks (sorted by lock key: two transactions never wait on each
   * other in a cycle) and forgets up to {@link MAX_FORGET} expired ids of each. Returns each
   * owner's count after that, and the change to write (minus the forgotten). Must run inside a
   * transaction.
   */
  async #lockOwners(c: pg.PoolClient, owners: readonly string[], t: number): Promise<{ counts: Map<string, number>; delta: Map<string, number> }> {
    const { rows: keys } = await c.query<{ k: number }>('SELECT hashtext(o) AS k FROM unnest($1::text[]) AS o', [owners])
    const sorted = [...new Set(keys.map((r) => r.k))].sort((a, b) => a - b)
    await c.query('SELECT count(pg_advisory_xact_lock($1, k)) FROM unnest($2::int[]) AS k', [OWNER_LOCK, sorted])
    const { rows: gone } = await c.query<{ owner: string; n: string }>(
      `WITH doomed AS (
         SELECT r.id FROM unnest($1::text[]) AS o(owner)
           CROSS JOIN LATERAL (SELECT id FROM ucan_replay WHERE owner = o.owner AND expires_at < $2 LIMIT $3) r
       ), gone AS (DELETE FROM ucan_replay WHERE id IN (SELECT id FROM doomed) RETURNING owner)
       SELECT owner, count(*) AS n FROM gone GROUP BY owner`,
      [owners, Math.ceil(t), MAX_FORGET], // expires_at < t ⟺ expires_at < ⌈t⌉ (whole seconds stored; the clock may not be)
    )
    const { rows } = await c.query<{ owner: string; n: string }>('SELECT owner, n FROM ucan_replay_owners WHERE owner = ANY($1::text[])', [owners])
    const counts = new Map<string, number>(owners.map((o) => [o, 0]))
    const delta = new Map<string, number>()
    for (const r of rows) counts.set(r.owner, Number(r.n))
    for (const r of gone) {
      counts.set(r.owner, counts.get(r.owner)! - Number(r.n))
      delta.set(r.owner, -Number(r.n))
    }
    return { counts, delta }
  }

  /** Forgets the expired ids of up to {@link MAX_SWEEP_OWNERS} owners (not only those admitting). */
  async #sweep(t: number): Promise<void> {
    const { rows } = await this.#pool.query<{ owner: string }>(
      'SELECT DISTINCT owner FROM (SELECT owner FROM ucan_replay WHERE expires_at < $1 LIMIT $2) e',
      [Math.ceil(t), MAX_SWEEP_OWNERS * 10],
    )
    if (rows.length === 0) return
    const owners = rows.slice(0, MAX_SWEEP_OWNERS).map((r) => r.owner)
    await retrying(() =>
      transaction(
        this.#pool,
        async (c) => {
          await this.#addCounts(c, (await this.#lockOwners(c, owners, t)).delta)
        },
        false,
      ),
    )
  }

  /** Runs an admitted task; its outcome is stored (durably) before its callers get it. */
  #run(b: Admit): void {
    ;(async () => b.task())()
      .then(
        (value) => this.#durable(b.key.id, value),
        async (err: unknown) => {
          await this.#forget(b.key).catch(() => {}) // left pending: later calls get UNKNOWN_OUTCOME
          throw err
        },
      )
      .then(b.resolve, b.reject)
  }

  /** Forgets this instance's pending claim of a task that rejected, freeing its owner's place. */
  async #forget(key: ReplayKey): Promise<void> {
    await retrying(() =>
      transaction(
        this.#pool,
        async (c) => {
          await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [OWNER_LOCK, key.owner])
          const r = await c.query('DELETE FROM ucan_replay WHERE id = $1 AND claimed_by = $2 AND outcome IS NULL RETURNING owner', [key.id, this.instance])
          if (r.rowCount === 1) await this.#addCounts(c, new Map([[key.owner, -1]]))
          await c.query('SELECT pg_notify($1, $2)', [CHANNEL, key.id]) // its waiters elsewhere are admitted again
        },
        false,
      ),
    )
  }

  /** Queues `value` as `id`'s outcome for the next group commit; resolves to it once committed. */
  #durable<T>(id: string, value: T): Promise<T> {
    const json = JSON.stringify(value)
    return new Promise<T>((resolve, reject) => {
      this.#settled.push({ id, json, resolve: () => resolve(value), reject })
      if (!this.#settleScheduled) {
        this.#settleScheduled = true
        setImmediate(() => void this.#settleBatch())
      }
    })
  }

  /** Commits the queued outcomes in one transaction (`synchronous_commit = on`) and announces them. */
  async #settleBatch(): Promise<void> {
    this.#settleScheduled = false
    const batch = this.#settled
    if (batch.length === 0) return
    this.#settled = []
    try {
      await retrying(() =>
        transaction(this.#pool, async (c) => {
          await c.query(
            `UPDATE ucan_replay r SET outcome = u.outcome FROM unnest($1::text[], $2::text[]) AS u(id, outcome)
               WHERE r.id = u.id AND r.claimed_by = $3`,
            [batch.map((b) => b.id), batch.map((b) => b.json), this.instance],
          )
          for (const payload of payloads(batch.map((b) => b.id))) await c.query('SELECT pg_notify($1, $2)', [CHANNEL, payload])
        }),
      )
    } catch (err) {
      for (const b of batch) b.reject(err)
      return
    }
    for (const b of batch) b.resolve()
  }

  /**
   * Waits for another instance's claim of `key.id` to get an outcome: woken by its notification,
   * or every `pollMs`. Resolves to `{ value }`: the outcome, or {@link UNKNOWN_OUTCOME} if the
   * claimer died without one; or to {@link AGAIN} if the claim is gone (its task failed and was
   * forgotten, or it expired): the caller is admitted again. Rejects with {@link ReplayPending}
   * after `waitMs`.
   */
  async #wait(key: ReplayKey): Promise<{ value: unknown } | typeof AGAIN> {
    const deadline = performance.now() + this.#waitMs
    let wake!: () => void
    let woken = new Promise<void>((r) => (wake = r))
    const waiter = () => wake()
    const set = this.#waiters.get(key.id) ?? new Set()
    set.add(waiter)
    this.#waiters.set(key.id, set)
    try {
      for (;;) {
        const row = await this.#lookup(key.id)
        if (row === undefined || Number(row.expires_at) < this.#now()) return AGAIN
        if (row.outcome !== null) return { value: JSON.parse(row.outcome) }
        if (!(await this.#alive(row.claimed_by))) return { value: UNKNOWN_OUTCOME }
        const left = deadline - performance.now()
        if (left <= 0) throw new ReplayPending(key.id, this.#waitMs)
        let timer: NodeJS.Timeout | undefined
        await Promise.race([woken, new Promise<void>((r) => (timer = setTimeout(r, Math.min(left, this.#pollMs))))])
        clearTimeout(timer)
        woken = new Promise<void>((r) => (wake = r))
      }
    } finally {
      set.delete(waiter)
      if (set.size === 0) this.#waiters.delete(key.id)
    }
  }

  /** Queues a call again for admission (the claim it waited for is gone). */
  #requeue(b: Admit): void {
    this.#admits.push(b)
  }

  /** Whether instance `key` holds its liveness lock (is alive, or at least connected). */
  async #alive(key: number): Promise<boolean> {
    if (key === this.instance) return false // a claim of this instance not in flight here: its run is over
    const { rows } = await this.#pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_locks
        WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2 AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [LIVE_LOCK, key],
    )
    return Number(rows[0]!.n) > 0
  }

  /** The row of `id`, read with every other lookup of this event-loop turn in one statement. */
  #lookup(id: string): Promise<Row | undefined> {
    return new Promise((resolve, reject) => {
      this.#lookups.push({ id, resolve, reject })
      if (this.#lookups.length === 1) {
        setImmediate(async () => {
          const batch = this.#lookups
          this.#lookups = []
          try {
            const ids = [...new Set(batch.map((b) => b.id))]
            const { rows } = await this.#pool.query<Row>('SELECT id, owner, expires_at, outcome, claimed_by FROM ucan_replay WHERE id = ANY($1::text[])', [ids])
            const byId = new Map(rows.map((r) => [r.id, r]))
            for (const b of batch) b.resolve(byId.get(b.id))
          } catch (err) {
            for (const b of batch) b.reject(err)
          }
        })
      }
    })
  }
}

/** Runs `tx` again (up to 3 times in all) when PostgreSQL aborted it as a deadlock or serialization failure. */
async function retrying<T>(tx: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await tx()
    } catch (err) {
      if (attempt >= 3 || !RETRY.has((err as { code?: string }).code ?? '')) throw err
    }
  }
}

/** `ids` joined by newlines into NOTIFY payloads of at most {@link MAX_PAYLOAD} bytes. */
function payloads(ids: readonly string[]): string[] {
  const out: string[] = []
  let cur = ''
  for (const id of ids) {
    if (cur !== '' && Buffer.byteLength(cur) + 1 + Buffer.byteLength(id) > MAX_PAYLOAD) {
      out.push(cur)
      cur = ''
    }
    cur = cur === '' ? id : `${cur}\n${id}`
  }
  if (cur !== '') out.push(cur)
  return out
}
