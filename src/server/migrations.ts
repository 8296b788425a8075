/**
 * Every schema step of the PostgreSQL stores, in the order `migrate` applies them (at `serve` start
 * with a database URL, and by `ucanlog db migrate`). Each area exports its own ordered list
 * (`<AREA>_MIGRATIONS`, ids `<area>-<NNNN>-<word>`, tables prefixed by area); this file only
 * concatenates them. A released step is never edited: a schema change is a new step at the end of
 * its area's list.
 */
import type { MigrationStep } from '../storage/postgres/migrate.js'
import { LOG_MIGRATIONS } from '../storage/postgres/schema.js'
import { UPLOAD_QUEUE_MIGRATIONS } from '../storage/postgres/pg-upload-queue.js'
import { REPLAY_MIGRATIONS, REVOCATION_MIGRATIONS } from '../ucan/index.js'
import { WITNESS_MIGRATIONS } from '../../witness/index.js'

/** The full, ordered list of schema steps (docs/storage.md, PostgreSQL). */
export const MIGRATIONS: readonly MigrationStep[] = [...LOG_MIGRATIONS, ...UPLOAD_QUEUE_MIGRATIONS, ...REPLAY_MIGRATIONS, ...REVOCATION_MIGRATIONS, ...WITNESS_MIGRATIONS]
