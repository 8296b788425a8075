/**
 * Per-log write leases with fencing tokens (docs/storage.md, PostgreSQL: leases and fencing).
 *
 * Whoever writes a log holds its row in `log_leases`: a fencing token, incremented by every
 * acquisition, and an expiry in the DATABASE's clock (no instance's clock matters), renewed on a
 * timer every third of the lease. An instance may take a log's lease only once it has expired (or
 * was released). Every write transaction first reads the lease row `FOR SHARE` and goes on only if
 * the token is still its own, so:
 *
 * - a write of a holder whose lease another instance has taken fails with {@link LeaseLostError},
 *   and nothing of it is visible (the transaction is rolled back); the lease then refuses every
 *   later write at once — a paused or partitioned instance can never write that log again;
 * - an acquisition (an UPDATE of the row) waits for write transactions in flight, so the new holder
 *   reads the log after the old holder's last committed write, never in the middle of one;
 * - a holder whose lease merely expired, with nobody taking it, may still write (its token is
 *   current: nothing it knows is stale).
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type pg from 'pg'
import { namedDatabaseError } from './errors.js'
import { inTransaction } from './transaction.js'

/** Default lease duration, ms: another instance may take a log this long after its holder stops renewing. */
export const DEFAULT_LEASE_MS = 5000

/** This instance no longer holds the log's lease (another took it, or it was released); nothing of the refused write is visible. Reopen the log to write again. */
export class LeaseLostError extends Error {
  override name = 'LeaseLost'
}

/** Another instance holds the log's lease and did not let it go within the wait; nothing was opened. Retry after `retryAfter` seconds. */
export class LeaseHeldError extends Error {
  override name = 'LeaseHeld'
  /** @param retryAfter seconds until the lease expires at the latest. */
  constructor(message: string, readonly retryAfter: number) {
    super(message)
  }
}

/** Default idle time, ms, after which an instance closes a log it holds and lets its lease go (leases follow use; docs/storage.md). */
export const DEFAULT_IDLE_RELEASE_MS = 1000

/** Longest pause, ms, between two attempts to take a lease another instance holds (one query each). */
export const ACQUIRE_POLL_MS = 50

/** Options of {@link WriteLease.acquire}. */
export interface LeaseOptions {
  /** Lease duration, ms, ≥ 100; default {@link DEFAULT_LEASE_MS}. Renewed every third of it. */
  leaseMs?: number
  /** Longest wait for another holder's lease to expire, ms; default 2 × leaseMs. */
  waitMs?: number
  /** Who holds it: stable per process (default host/pid/random), shown in `log_leases.holder`. */
  holder?: string
  /** Where the holder takes requests (its internal URL), kept in `log_leases.url` for forwarding; default none. */
  url?: string
  /** Fault injection for tests: false never renews (as a paused process would not). Default true. */
  renew?: boolean
  /** Told when the lease is found lost (renewal or a write found another token); must not throw. */
  onLost?: (logId: string) => void
  logger?: { warn(o: object, msg?: string): void }
}

/** A holder name unique to this process: `<host>/<pid>/<random hex>`. */
export function defaultHolder(): string {
  return `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms))

/**
 * The live holder of `logId`'s lease other than `self` (its name and URL), or undefined when the
 * lease is free, expired or `self`'s. One indexed read.
 * @throws DatabaseUnavailableError
 */
export async function liveHolder(pool: pg.Pool, logId: string, self: string): Promise<{ holder: string; url: string | undefined } | undefined> {
  try {
    const r = await pool.query<{ holder: string; url: string | null }>('SELECT holder, url FROM log_leases WHERE log_id = $1 AND expires_at > now() AND holder <> $2', [logId, self])
    const row = r.rows[0]
    return row && { holder: row.holder, url: row.url ?? undefined }
  } catch (err) {
    throw namedDatabaseError(err)
  }
}

/** One held lease on one log; see the module comment. */
export class WriteLease {
  private lostFlag = false
  private timer: NodeJS.Timeout | undefined

  private constructor(
    private readonly pool: pg.Pool,
    /** The log id (a space DID, or `service:<name>`). */
    readonly logId: string,
    /** The fencing token of this acquisition (a decimal bigint). */
    readonly token: string,
    private readonly leaseMs: number,
    private readonly o: LeaseOptions,
  ) {
    if (o.renew !== false) {
      this.timer = setInterval(() => void this.renew(), Math.max(1, Math.floor(leaseMs / 3)))
      this.timer.unref()
    }
  }

  /**
   * Takes the lease of `logId` (whose `log_logs` row must exist), waiting up to `waitMs` for
   * another holder's lease to expire; increments the token.
   * @throws LeaseHeldError when it is still held after the wait; DatabaseUnavailableError.
   */
  static async acquire(pool: pg.Pool, logId: string, o: LeaseOptions = {}): Promise<WriteLease> {
    const leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS
    if (!Number.isSafeInteger(leaseMs) || leaseMs < 100) throw new RangeError('leaseMs must be an integer ≥ 100')
    const holder = o.holder ?? defaultHolder()
    const deadline = performance.now() + (o.waitMs ?? 2 * leaseMs)
    for (;;) {
      try {
        const taken = await pool.query<{ token: string }>(
          `INSERT INTO log_leases (log_id, token, holder, expires_at, url) VALUES ($1, 1, $2, now() + $3 * interval '1 millisecond', $4)
           ON CONFLICT (log_id) DO UPDATE SET token = log_leases.token + 1, holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at, url = EXCLUDED.url
             WHERE log_leases.expires_at <= now() OR log_leases.holder = EXCLUDED.holder
           RETURNING token::text AS token`,
          [logId, holder, leaseMs, o.url ?? null],
        )
        if (taken.rows[0]) return new WriteLease(pool, logId, taken.rows[0].token, leaseMs, { ...o, holder })
        const left = await pool.query<{ ms: number }>(`SELECT GREATEST(0, ceil(extract(epoch FROM expires_at - now()) * 1000))::int AS ms FROM log_leases WHERE log_id = $1`, [logId])
        const ms = left.rows[0]?.ms ?? 0
        const now = performance.now()
        if (now >= deadline) throw new LeaseHeldError(`log ${logId} is being written by another instance; retry later`, Math.max(1, Math.ceil(ms / 1000)))
        // Polled (the holder may release it long before it expires: leases follow use), at most every ACQUIRE_POLL_MS.
        await sleep(Math.min(ms + 10, ACQUIRE_POLL_MS, Math.max(10, deadline - now)))
      } catch (err) {
        throw namedDatabaseError(err)
      }
    }
  }

  /** True once the lease is known lost or released: every write through it is refused. */
  get lost(): boolean {
    return this.lostFlag
  }

  /**
   * Runs `fn` in one transaction that first checks, under `FOR SHARE` on the lease row, that the
   * token is still this lease's; commits when `fn` resolves, rolls back when anything fails.
   * @throws LeaseLostError (nothing of `fn` is visible); DatabaseUnavailableError; what `fn` throws.
   */
  async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.lostFlag) throw new LeaseLostError(`log ${this.logId}: this instance's write lease was lost or released; nothing written`)
    return inTransaction(this.pool, async (client) => {
      const row = await client.query<{ token: string }>('SELECT token::text AS token FROM log_leases WHERE log_id = $1 FOR SHARE', [this.logId])
      if (row.rows[0]?.token !== this.token) {
        this.markLost()
        throw new LeaseLostError(`log ${this.logId}: another instance took its write lease (token ${row.rows[0]?.token ?? 'none'}, ours ${this.token}); nothing written`)
      }
      return fn(client)
    })
  }

  /**
   * Lets the lease go (expires now, if still ours) and stops renewing; later writes are refused.
   * When the token is no longer ours, another instance took the log while this one believed it held
   * it (e.g. this process was paused past the lease): reported as lost, as a refused renewal is.
   * Idempotent.
   */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    if (this.lostFlag) return
    this.lostFlag = true
    try {
      const r = await this.pool.query('UPDATE log_leases SET expires_at = now() WHERE log_id = $1 AND token = $2', [this.logId, this.token])
      if (r.rowCount === 0) this.reportLost()
    } catch (err) {
      this.o.logger?.warn({ err: namedDatabaseError(err), log: this.logId }, 'releasing a write lease failed; it expires by itself')
    }
  }

  private async renew(): Promise<void> {
    if (this.lostFlag) return
    try {
      const r = await this.pool.query(`UPDATE log_leases SET expires_at = now() + $3 * interval '1 millisecond' WHERE log_id = $1 AND token = $2`, [this.logId, this.token, this.leaseMs])
      if (r.rowCount === 0 && !this.lostFlag) this.markLost()
    } catch (err) {
      // Not lost yet: the token check of the next write decides. The lease may expire meanwhile.
      this.o.logger?.warn({ err: namedDatabaseError(err), log: this.logId }, 'renewing a write lease failed; retrying')
    }
  }

  private markLost(): void {
    if (this.lostFlag) return
    this.lostFlag = true
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    this.reportLost()
  }

  private reportLost(): void {
    this.o.logger?.warn({ log: this.logId, token: this.token }, 'write lease lost to another instance: this log refuses writes here until reopened')
    this.o.onLost?.(this.logId)
  }
}
