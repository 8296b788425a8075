/**
 * The log storage's tables on PostgreSQL (docs/storage.md, PostgreSQL), as ordered migration steps
 * (src/storage/postgres/migrate.ts; the full list is src/server/migrations.ts). Tables are prefixed
 * `log_`. A released step is never edited: a change is a new step.
 */
import type { MigrationStep } from './migrate.js'

/** The log storage's schema steps, in order. */
export const LOG_MIGRATIONS: readonly MigrationStep[] = [
  {
    id: 'log-0001-files',
    sql: `
      -- Every log: a space's (kind 'space', id = the space DID) or the service's own (kind 'service', e.g. revocations).
      CREATE TABLE log_logs (
        log_id     text PRIMARY KEY,
        kind       text NOT NULL CHECK (kind IN ('space', 'service')),
        created_at timestamptz NOT NULL DEFAULT now()
      );
      -- The files of every log, by c2sp.org/tlog-tiles path (and .state/ for the engine's own).
      CREATE TABLE log_files (
        log_id text  NOT NULL REFERENCES log_logs (log_id),
        path   text  NOT NULL,
        bytes  bytea NOT NULL,
        PRIMARY KEY (log_id, path)
      );
      -- Who may write a log: one lease per log; token grows by one at every acquisition (fencing).
      CREATE TABLE log_leases (
        log_id     text        PRIMARY KEY REFERENCES log_logs (log_id),
        token      bigint      NOT NULL,
        holder     text        NOT NULL,
        expires_at timestamptz NOT NULL
      );
      -- The archive: one CAR per published checkpoint, and every directory entry of the newest root.
      CREATE TABLE log_cars (
        log_id    text    NOT NULL REFERENCES log_logs (log_id),
        tree_size bigint  NOT NULL,
        root      text    NOT NULL,
        car_cid   text    NOT NULL,
        car       bytea   NOT NULL,
        blocks    integer NOT NULL,
        PRIMARY KEY (log_id, tree_size)
      );
      CREATE TABLE log_car_entries (
        log_id text    NOT NULL REFERENCES log_logs (log_id),
        dir    text    NOT NULL,
        name   text    NOT NULL,
        is_dir boolean NOT NULL,
        cid    bytea   NOT NULL,
        tsize  bigint  NOT NULL,
        PRIMARY KEY (log_id, dir, name)
      );
    `,
  },
  {
    id: 'log-0002-lease-url',
    sql: `
      -- Where the holder of a log's lease takes requests (its internal URL), so another instance can
      -- forward an append for that log to it (docs/storage.md, PostgreSQL: any instance accepts any append).
      ALTER TABLE log_leases ADD COLUMN url text;
    `,
  },
]
