/**
 * Whether the service's storage is full (issue 15 item 1), as `/healthz` reports it: set when a
 * write of an append failed because the data directory's filesystem had no room (ENOSPC, EDQUOT,
 * SQLITE_FULL: src/storage/storage-full.ts), cleared by the next append that succeeds
 * (the operator freed space; no restart is needed). Holds one record, so it is bounded.
 */
import type { Logger } from 'pino'
import { isStorageFull, StorageFullError } from '../storage/storage-full.js'

/** What `/healthz` shows while the storage is full: the error code seen and when it was first seen (ISO 8601). */
export interface StorageFullStatus {
  status: 'StorageFull'
  code: string
  since: string
}

/** The storage-full state of the service (see the module comment). */
export class StorageHealth {
  private state: StorageFullStatus | undefined

  private readonly now: () => number
  private readonly logger: Pick<Logger, 'warn' | 'info'> | undefined

  /**
   * `logger` gets one `warn` line when the storage becomes full and one `info` line when an append
   * succeeds again; `now` gives the wall-clock time in ms since the epoch (for `since` only).
   */
  constructor(o: { logger?: Pick<Logger, 'warn' | 'info'>; now?: () => number } = {}) {
    this.now = o.now ?? Date.now
    this.logger = o.logger
  }

  /**
   * Records a failed append's cause: a full filesystem becomes a {@link StorageFullError} (returned,
   * for the caller to throw: the client gets `StorageFull`) and marks the storage full; any other
   * error is returned unchanged.
   */
  failed(err: unknown): unknown {
    if (!isStorageFull(err)) return err
    const full = err instanceof StorageFullError ? err : new StorageFullError(err)
    if (!this.state) {
      this.state = { status: 'StorageFull', code: full.code, since: new Date(this.now()).toISOString() }
      this.logger?.warn({ code: full.code, err: err }, 'storage full: appends refused StorageFull until space is freed')
    }
    return full
  }

  /** An append succeeded: whatever filled the storage has been freed. */
  succeeded(): void {
    if (!this.state) return
    this.state = undefined
    this.logger?.info('storage has room again: appends accepted')
  }

  /** The storage-full status while the last append failed for want of space; undefined otherwise. */
  full(): StorageFullStatus | undefined {
    return this.state
  }
}
