/**
 * The set of logs a service runs: one {@link Log} per space DID. Reads never create a log; only an
 * authorized append or create does (docs/wire.md: unknown logs are 404 and create nothing).
 *
 * Bounded (issue 8): every open log holds {@link FDS_PER_OPEN_LOG} file descriptors, so at most
 * `maxOpenLogs` are open. Writers take a lease ({@link LogManager.acquire}); when another log is
 * needed at the cap, the least recently used IDLE log (no lease, nothing queued, running or
 * scheduled) is closed first, and its id cannot be reopened until that close has finished. When
 * every open log is busy, the request that needs another one is refused with
 * {@link TooManyOpenLogsError}; the open logs' users are never touched. Public reads of the published
 * state ({@link LogManager.published}) do not open logs at all: they read the files directly.
 *
 * With `idleCloseMs`, a log idle that long (no lease, nothing queued or scheduled) is closed as
 * well, whatever the cap: with several instances on one database its backend lets the log's write
 * lease go, so the lease follows use (docs/storage.md, PostgreSQL).
 *
 * Creating a log is limited separately: `admitCreate` (per client address) and `maxLogs` (in total)
 * refuse with {@link LogCreationLimitedError}.
 *
 * A log whose stored state is damaged (state.ts: {@link CorruptLogError}) is remembered with the
 * file and problem ({@link LogManager.damaged}, shown at /healthz) and refused with
 * {@link LogUnavailableError} until the service restarts; a failed open releases everything it
 * opened.
 *
 * A log stopped by a failed write (log.ts {@link StorageFailedError}, issue 15 item 2) is reopened
 * at the next {@link LogManager.acquire} of it: the stopped instance is closed (its lease holders'
 * appends are refused StorageFailed meanwhile), then a new one is opened from the files with
 * `recommit` (the commit point and checkpoint written again, durably), so it continues from the
 * last committed state. While the fault lasts, each reopen fails and the request is refused
 * (StorageFull for a full disk, StorageFailed otherwise); no other log is affected.
 */
import type { NoteSigner, NoteVerifier } from '../tlog/index.js'
import { Log, LogClosedError, type LogOptions, StorageFailedError, type WitnessQuorum } from './log.js'
import { CorruptLogError, type StoredCheckpoint, checkStoredState, readEntries, readStoredCheckpoint, readStoredTree } from './state.js'
import type { LogBackend, LogFiles } from './storage.js'

/**
 * The engine's origin prefix when none is given (tests; origins are `<prefix>/logs/<spaceDID>`). The
 * service always passes one: the data directory's, by default derived from its key (src/server/origin-prefix.ts).
 */
export const DEFAULT_ORIGIN_PREFIX = 'ucanlog'
/** Default most logs open at once (each holds {@link FDS_PER_OPEN_LOG} descriptors). */
export const DEFAULT_MAX_OPEN_LOGS = 256
/** Default sustained log creations per client address, logs per second (every new log costs disk and, while open, descriptors; keys are free). */
export const DEFAULT_LOG_CREATE_RATE = 1
/** Default burst of log creations per client address, logs. */
export const DEFAULT_LOG_CREATE_BURST = 20
/** File descriptors one open log holds: its CAR index (SQLite database + WAL, exclusive locking). */
export const FDS_PER_OPEN_LOG = 2
/** Default most logs the service holds in total (0 = unlimited); bounds disk spent on empty logs. */
export const DEFAULT_MAX_LOGS = 1_000_000
/** Seconds a client is told to wait after {@link TooManyOpenLogsError}. */
export const OPEN_LOGS_RETRY_AFTER = 1

/** Every open log is busy and the cap is reached; nothing was opened. Retry after `retryAfter` seconds. */
export class TooManyOpenLogsError extends Error {
  override name = 'TooManyOpenLogs'
  readonly retryAfter = OPEN_LOGS_RETRY_AFTER
}

/** This client may not create a log now (its creation rate, or the service's total); nothing was created. */
export class LogCreationLimitedError extends Error {
  override name = 'LogCreationLimited'
  /** @param retryAfter seconds until the client may create one again; undefined when the total is reached. */
  constructor(
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message)
  }
}

/** The log's stored state is damaged ({@link LogDamage}); it is not served until repaired and the service restarted. */
export class LogUnavailableError extends Error {
  override name = 'LogUnavailable'
  constructor(readonly damage: LogDamage) {
    super(`the log's stored state is damaged (${damage.path}); see /healthz`)
  }
}

/** A damaged log, as shown at /healthz. */
export interface LogDamage {
  /** The log id (space DID). */
  log: string
  /** The damaged file, relative to the log's directory (e.g. `checkpoint`). */
  path: string
  /** What is wrong with it. */
  problem: string
}

/** A writer's hold on an open log: the log is not closed before {@link LogLease.release}. */
export interface LogLease {
  readonly log: Log
  /** Lets the log be closed when idle. Idempotent. */
  release(): void
}

/** A log's published state, read without opening the log (see {@link LogManager.published}). */
export interface PublishedView {
  id: string
  origin: string
  checkpoint: StoredCheckpoint
  /** Integrated tree size (entries), ≥ the checkpoint's. */
  integratedSize(): Promise<number>
  /** Reads a file by its tlog-tiles path (callers check the published checkpoint covers it). */
  readFile(path: string): Promise<Uint8Array | undefined>
  /** Published entries [offset, offset+limit) (fewer at the end), at most `maxBytes` of them (see state.ts readEntries). @throws LogUnavailableError */
  read(offset: number, limit: number, maxBytes?: number): Promise<Uint8Array[]>
}

/** Options of {@link LogManager}: where logs live, how each is signed and witnessed, and the engine's knobs. */
export interface LogManagerOptions {
  backend: LogBackend
  /** Origin prefix (default {@link DEFAULT_ORIGIN_PREFIX}); no whitespace, `+` or trailing `/`. */
  originPrefix?: string
  /** The checkpoint signer for an origin (key name = origin). */
  signer(origin: string): NoteSigner
  /** Its public key: when given, stored checkpoints' signatures are checked at open and when read. */
  verifier?(origin: string): NoteVerifier
  /** The witness client for an origin (one per log: witnesses keep state per origin). */
  witnesses(origin: string): WitnessQuorum
  /** Batching and retry knobs passed to every log. */
  log?: Pick<LogOptions, 'batchMaxSize' | 'batchMaxAgeMs' | 'maxPending' | 'maxEntries' | 'publishRetryMs' | 'tileCache' | 'logger'>
  /** Most logs open at once, ≥ 1; default {@link DEFAULT_MAX_OPEN_LOGS}. */
  maxOpenLogs?: number
  /** Most logs in total (0 = unlimited); default {@link DEFAULT_MAX_LOGS}. */
  maxLogs?: number
  /**
   * Asked before a log is created for `client` (an IP address, when known): undefined admits (and
   * charges) it, a number refuses it with that many seconds to wait. Default: admit all.
   */
  admitCreate?(client: string | undefined, o?: { dryRun?: boolean }): number | undefined
  /** Called after a log publishes a checkpoint, with the log id, tree size (entries) and root hash (32 bytes); must not throw (the lookup index catches up, the checkpoint history records it). */
  onPublished?(id: string, size: number, rootHash: Uint8Array): void
  /**
   * Closes a log once it has been idle (no lease, nothing queued or scheduled) this long, ms; 0
   * (default) keeps it open until another log needs its place. With several instances on one
   * database (docs/storage.md, PostgreSQL), closing lets the log's write lease go, so another
   * instance can take it: leases follow use.
   */
  idleCloseMs?: number
  /** Test hook: runs before an evicted log is closed (a stall here holds the close). */
  beforeClose?(id: string): void | Promise<void>
  /** Test hook: called when an `acquire` finds log `id` closing and starts waiting for that close to finish (before opening it again). */
  onWaitForClose?(id: string): void
}

type Slot =
  | { id: string; state: 'opening' | 'open'; leases: number; ready: Promise<Log>; log?: Log; usedAt?: number }
  | { id: string; state: 'closing'; leases: number; ready: Promise<Log>; log?: Log; usedAt?: number; done: Promise<void> }

/** Opens, bounds and closes the logs; see the module comment. */
export class LogManager {
  readonly originPrefix: string
  /** Open, opening and closing logs, least recently used first. */
  private readonly slots = new Map<string, Slot>()
  private readonly damage = new Map<string, LogDamage>()
  /** Logs stopped by a failed write, not yet reopened: their next open recommits (log.ts `recommit`). */
  private readonly failed = new Set<string>()
  private readonly maxOpen: number
  private readonly maxLogs: number
  /** Logs existing, once counted (for `maxLogs`). */
  private total: Promise<number> | undefined
  private closing = false
  private readonly idleCloseMs: number
  private idleTimer: NodeJS.Timeout | undefined

  constructor(private readonly o: LogManagerOptions) {
    this.originPrefix = o.originPrefix ?? DEFAULT_ORIGIN_PREFIX
    if (!/^[^\s+]+$/u.test(this.originPrefix) || this.originPrefix.endsWith('/')) {
      throw new RangeError(`invalid origin prefix ${JSON.stringify(this.originPrefix)}: no whitespace, "+" or trailing "/"`)
    }
    this.maxOpen = o.maxOpenLogs ?? DEFAULT_MAX_OPEN_LOGS
    if (!Number.isSafeInteger(this.maxOpen) || this.maxOpen < 1) throw new RangeError('maxOpenLogs must be an integer ≥ 1')
    this.maxLogs = o.maxLogs ?? DEFAULT_MAX_LOGS
    if (!Number.isSafeInteger(this.maxLogs) || this.maxLogs < 0) throw new RangeError('maxLogs must be an integer ≥ 0')
    this.idleCloseMs = o.idleCloseMs ?? 0
    if (!Number.isSafeInteger(this.idleCloseMs) || this.idleCloseMs < 0) throw new RangeError('idleCloseMs must be an integer ≥ 0')
    if (this.idleCloseMs > 0) {
      // One sweep over the open logs (at most maxOpenLogs) every half idle time.
      this.idleTimer = setInterval(() => this.closeIdle(), Math.max(10, Math.floor(this.idleCloseMs / 2)))
      this.idleTimer.unref()
    }
  }

  /** Closes every open log idle (no lease, {@link Log.idle}) for at least `idleCloseMs`. */
  private closeIdle(): void {
    const now = performance.now()
    for (const s of [...this.slots.values()]) {
      if (s.state === 'open' && s.leases === 0 && s.log?.idle && now - (s.usedAt ?? 0) >= this.idleCloseMs) this.evict(s)
    }
  }

  /** The c2sp.org/tlog-checkpoint origin of a log: `<prefix>/logs/<id>`. */
  origin(id: string): string {
    return `${this.originPrefix}/logs/${id}`
  }

  /** Logs open now (including those opening or closing); at most `maxOpenLogs` hold descriptors. */
  get openCount(): number {
    return this.slots.size
  }

  /** True when log `id` is open here, or opening (not closing). */
  isOpen(id: string): boolean {
    const s = this.slots.get(id)
    return s !== undefined && s.state !== 'closing'
  }

  /** The damaged logs found so far (at open, by {@link checkAll}, or when read). */
  damaged(): LogDamage[] {
    return [...this.damage.values()]
  }

  /**
   * A lease on the open log with this id, opening it (and creating it, with `create`) if needed;
   * undefined when it does not exist and `create` is not set.
   * @throws LogUnavailableError (damaged), LogClosedError (after close), TooManyOpenLogsError (every open log busy at the cap, or
   *   out of descriptors), LogCreationLimitedError (creation refused for `client`).
   */
  async acquire(id: string, o: { create?: boolean; client?: string } = {}): Promise<LogLease | undefined> {
    for (;;) {
      if (this.closing) throw new LogClosedError('the service is stopping')
      this.refuseDamaged(id)
      const slot = this.slots.get(id)
      if (slot?.state === 'closing') {
        this.o.onWaitForClose?.(id)
        await slot.done // never open a log twice: wait until its close has finished
        continue
      }
      if (slot?.state === 'open' && slot.log?.failed) {
        // Stopped by a failed write: close it (whoever holds it), then open it again from its files.
        this.o.log?.logger?.warn({ log: id }, 'reopening a log stopped by a failed write')
        this.evict(slot)
        continue
      }
      if (slot) return this.lease(slot)
      const exists = await this.o.backend.exists(id)
      if (!exists && !o.create) return undefined
      if (this.slots.has(id)) continue // opened meanwhile: join it
      this.refuseDamaged(id)
      if (!exists) await this.admitCreation(o.client)
      if (this.slots.has(id)) continue
      const victim = this.makeRoom()
      const created = !exists
      const fresh: Slot = { id, state: 'opening', leases: 0, ready: this.openLog(id, created, victim) }
      this.slots.set(id, fresh)
      fresh.ready.then(
        (log) => {
          fresh.log = log
          if (fresh.state === 'opening') fresh.state = 'open'
        },
        () => {
          if (this.slots.get(id) === fresh) this.slots.delete(id)
          if (created) this.total = undefined // recount: the log may or may not exist now
        },
      )
      return this.lease(fresh)
    }
  }

  /**
   * The open log with this id, or undefined when no such log exists (nothing is created). Not
   * leased: it may be closed once idle when another log needs its place (tools and tests).
   * @throws as {@link acquire}
   */
  async get(id: string): Promise<Log | undefined> {
    const lease = await this.acquire(id)
    lease?.release()
    return lease?.log
  }

  /** The log with this id, created empty when it does not exist yet. Not leased (see {@link get}). @throws as {@link acquire} */
  async getOrCreate(id: string, client?: string): Promise<Log> {
    const lease = (await this.acquire(id, { create: true, client }))!
    lease.release()
    return lease.log
  }

  /**
   * The published checkpoint of a log and read access to what it covers, WITHOUT opening the log
   * (no lease, no open-log slot, no descriptor held): an open log answers from memory, another
   * from its files (checkpoint parsed and signature-checked). Undefined when the log does not
   * exist or has published nothing.
   * @throws LogUnavailableError when the log is damaged (found now or before).
   */
  async published(id: string): Promise<PublishedView | undefined> {
    this.refuseDamaged(id)
    const origin = this.origin(id)
    const open = this.slots.get(id)?.log
    let files: Pick<LogFiles, 'read'>
    let checkpoint: StoredCheckpoint | undefined
    if (open || !this.o.backend.files) {
      const log = open ?? (await this.get(id))
      if (!log) return undefined
      checkpoint = log.checkpoint
      files = { read: (p) => log.readFile(p) }
    } else {
      const f = await this.o.backend.files(id)
      if (!f) return undefined
      files = f
      checkpoint = await this.checked(id, () => readStoredCheckpoint(f, { origin, verifier: this.o.verifier?.(origin) }))
    }
    if (!checkpoint) return undefined
    const cp = checkpoint
    return {
      id,
      origin,
      checkpoint: cp,
      integratedSize: async () => open?.treeSize ?? (await this.checked(id, () => readStoredTree(files)))?.size ?? cp.size,
      readFile: (path) => files.read(path),
      read: (offset, limit, maxBytes) => this.checked(id, () => readEntries(files, cp.size, offset, limit, maxBytes)),
    }
  }

  /**
   * Checks every log that is not open, one at a time, reading only its state files and the right
   * edge of its tiles (state.ts checkStoredState), and records the damaged ones. Meant to run in
   * the background at start. Resolves with the number of logs checked; I/O errors other than
   * damage are logged and skipped.
   */
  async checkAll(): Promise<number> {
    const files = this.o.backend.files?.bind(this.o.backend)
    if (!files) return 0
    let n = 0
    for (const id of await this.o.backend.list()) {
      if (this.closing) break
      if (this.slots.has(id) || this.damage.has(id)) continue
      const origin = this.origin(id)
      try {
        const f = await files(id)
        if (f) await this.checked(id, () => checkStoredState(f, { origin, verifier: this.o.verifier?.(origin) }))
      } catch (err) {
        if (!(err instanceof LogUnavailableError)) this.o.log?.logger?.warn({ err, log: id }, 'could not check log state')
      }
      n++
    }
    return n
  }

  /** True when a log with this id exists (open or not). Creates nothing. */
  exists(id: string): Promise<boolean> {
    return this.o.backend.exists(id)
  }

  /** Ids of every existing log. */
  list(): Promise<string[]> {
    return this.o.backend.list()
  }

  /** Flushes and closes every open log. */
  async close(): Promise<void> {
    this.closing = true
    clearInterval(this.idleTimer)
    const slots = [...this.slots.values()]
    await Promise.allSettled(slots.map(async (s) => (s.state === 'closing' ? s.done : (await s.ready).close())))
    this.slots.clear()
  }

  private refuseDamaged(id: string): void {
    const d = this.damage.get(id)
    if (d) throw new LogUnavailableError(d)
  }

  /** Runs `f`, recording a CorruptLogError as damage of log `id` (thrown as LogUnavailableError). */
  private async checked<T>(id: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f()
    } catch (err) {
      if (err instanceof CorruptLogError) throw new LogUnavailableError(this.recordDamage(id, err))
      throw err
    }
  }

  private recordDamage(id: string, err: CorruptLogError): LogDamage {
    const existing = this.damage.get(id)
    if (existing) return existing
    const damage: LogDamage = { log: id, path: err.path, problem: err.message }
    this.damage.set(id, damage)
    const file = this.o.backend.location?.(id, err.path) ?? err.path
    this.o.log?.logger?.error({ log: id, file, problem: err.message }, 'log damaged: not served until restored (see /healthz)')
    return damage
  }

  private async lease(slot: Slot): Promise<LogLease> {
    slot.leases++
    slot.usedAt = performance.now()
    // Most recently used last.
    this.slots.delete(slot.id)
    this.slots.set(slot.id, slot)
    let log: Log
    try {
      log = await slot.ready
    } catch (err) {
      slot.leases--
      throw err
    }
    let held = true
    return {
      log,
      release: () => {
        if (held) slot.leases--
        held = false
        slot.usedAt = performance.now()
      },
    }
  }

  /**
   * Frees a place for one more log: undefined when under the cap, else the least recently used idle
   * log, now closing (the caller opens only once it has closed).
   * @throws TooManyOpenLogsError when every open log is busy.
   */
  private makeRoom(): Extract<Slot, { state: 'closing' }> | undefined {
    let active = 0
    for (const s of this.slots.values()) if (s.state !== 'closing') active++
    if (active < this.maxOpen) return undefined
    for (const s of this.slots.values()) {
      if (s.state === 'open' && ((s.leases === 0 && s.log?.idle) || s.log?.failed)) return this.evict(s)
    }
    throw new TooManyOpenLogsError(`${this.maxOpen} logs are open and busy; retry later`)
  }

  private evict(s: Slot): Extract<Slot, { state: 'closing' }> {
    // However it is closed, a log stopped by a failed write recommits at its next open.
    if (s.log?.failed) this.failed.add(s.id)
    const closing = s as Extract<Slot, { state: 'closing' }>
    closing.state = 'closing'
    closing.done = (async () => {
      try {
        await this.o.beforeClose?.(s.id)
        await s.log!.close()
      } catch (err) {
        this.o.log?.logger?.error({ err, log: s.id }, 'closing an idle log failed')
      } finally {
        if (this.slots.get(s.id) === s) this.slots.delete(s.id)
      }
    })()
    return closing
  }

  /**
   * Whether creating log `id` for `client` now would be refused, without charging anything: the
   * refusal when the log does not exist and the total or the client's creation rate is spent, else
   * undefined. Cheap (a stat and a bucket), so callers ask it before expensive authorization work.
   */
  async creationRefusal(id: string, client: string | undefined): Promise<LogCreationLimitedError | undefined> {
    if (this.slots.has(id) || (await this.o.backend.exists(id))) return undefined
    try {
      await this.admitCreation(client, true)
      return undefined
    } catch (err) {
      if (err instanceof LogCreationLimitedError) return err
      throw err
    }
  }

  /** Refuses a creation over the total or the client's rate (charging the client when admitted, unless `dryRun`). */
  private async admitCreation(client: string | undefined, dryRun = false): Promise<void> {
    if (this.maxLogs > 0) {
      this.total ??= this.o.backend.list().then((ids) => ids.length)
      if ((await this.total) >= this.maxLogs) throw new LogCreationLimitedError(`the service holds its maximum of ${this.maxLogs} logs`)
    }
    const wait = this.o.admitCreate?.(client, { dryRun })
    if (wait !== undefined) throw new LogCreationLimitedError('too many logs created from this address; retry later', Math.max(1, Math.ceil(wait)))
    if (dryRun) return
    if (this.total) this.total = this.total.then((n) => n + 1)
  }

  /** Opens a log once `victim` (if any) has closed; a failure closes whatever was opened. */
  private async openLog(id: string, create: boolean, victim: Extract<Slot, { state: 'closing' }> | undefined): Promise<Log> {
    if (victim) await victim.done
    let storage: Awaited<ReturnType<LogBackend['open']>>
    try {
      storage = await this.o.backend.open(id, create)
    } catch (err) {
      throw outOfDescriptors(err) ? new TooManyOpenLogsError('out of file descriptors; retry later') : err
    }
    if (!storage) throw new Error(`log ${id} does not exist`)
    const origin = this.origin(id)
    const recommit = this.failed.has(id)
    try {
      const log = await Log.open({ id, origin, signer: this.o.signer(origin), verifier: this.o.verifier?.(origin), witnesses: this.o.witnesses(origin), ...storage, ...this.o.log, recommit, onPublished: (size, rootHash) => this.o.onPublished?.(id, size, rootHash) })
      if (recommit) {
        this.failed.delete(id)
        this.o.log?.logger?.info({ log: id, treeSize: log.treeSize }, 'log reopened after a failed write')
      }
      return log
    } catch (err) {
      // Release the CAR index (exclusive): left open, every later open failed with "database is locked".
      await Promise.resolve(storage.archive.close?.()).catch(() => {})
      if (err instanceof CorruptLogError) throw new LogUnavailableError(this.recordDamage(id, err))
      if (outOfDescriptors(err)) throw new TooManyOpenLogsError('out of file descriptors; retry later')
      // Reopening after a failed write can fail the same way: refused by name, retried at the next acquire.
      throw recommit && !(err instanceof StorageFailedError) ? new StorageFailedError(id, err) : err
    }
  }
}

function outOfDescriptors(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code
  // SQLite reports a descriptor shortage as SQLITE_CANTOPEN.
  return code === 'EMFILE' || code === 'ENFILE' || code === 'SQLITE_CANTOPEN'
}
