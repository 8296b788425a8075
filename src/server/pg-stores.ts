/**
 * The UCAN layer's and the bundled witness's stores on PostgreSQL (issue 14), built from the
 * service's pool (src/server/database.ts makes it and applies src/server/migrations.ts first):
 * the replay guard (src/ucan/pg-replay.ts), the revocation index behind the revocation log
 * (src/ucan/pg-revocations.ts) and the witness state (witness/pg-store.ts). With a database URL
 * they replace `<data>/ucan.db` and `<data>/witness.db`; without one nothing here is used.
 */
import type pg from 'pg'
import { PgReplayGuard, type PgReplayGuardOptions } from '../ucan/pg-replay.js'
import { PgRevocations } from '../ucan/pg-revocations.js'
import { systemNow } from '../ucan/clock.js'
import { PgWitnessStore } from '../../witness/index.js'

/** Options of {@link openPgUcanStores}: as UcanStore's (src/ucan/store.ts) plus the replay guard's wait bounds. */
export interface PgUcanStoresOptions extends PgReplayGuardOptions {
  /** Most revocation records per principal (scope); default DEFAULT_REVOCATIONS_PER_SCOPE. */
  maxRevocationsPerScope?: number
}

/** The UCAN layer's PostgreSQL stores: what UcanStore gives on SQLite. */
export interface PgUcanStores {
  /** The replay guard shared by every instance on the database. */
  readonly replay: PgReplayGuard
  /** The revocation index (the authorizer's revocation store; the revocation log's index). */
  readonly revocations: PgRevocations
  /** Commits what the replay guard holds and gives back its kept connection; the pool stays open (its owner ends it). */
  close(): Promise<void>
}

/**
 * Builds the UCAN layer's stores on `pool` (schema applied). The replay guard keeps one of the
 * pool's connections while open (its liveness lock and LISTEN): size the pool one larger.
 * @throws RangeError for a bad share or cap, or a pool of fewer than 2 connections (the kept one
 *   would leave none for the claims); the driver's error when the database cannot be reached.
 */
export async function openPgUcanStores(pool: pg.Pool, options: PgUcanStoresOptions = {}): Promise<PgUcanStores> {
  if ((pool.options.max ?? 10) < 2) throw new RangeError('the database pool must allow at least 2 connections: the replay guard keeps one')
  const revocations = new PgRevocations(pool, options.now ?? systemNow, options.maxRevocationsPerScope)
  const replay = await PgReplayGuard.open(pool, options)
  return { replay, revocations, close: () => replay.close() }
}

/** The bundled witness's state on `pool` (schema applied): a WitnessStore safe with several witness processes. */
export function pgWitnessStore(pool: pg.Pool): PgWitnessStore {
  return new PgWitnessStore(pool)
}
