/**
 * One transparency log: the sequencer that batches entries, integrates them into an RFC 6962 tree
 * stored as c2sp.org/tlog-tiles (hash tiles and entry bundles), signs a c2sp.org/tlog-checkpoint
 * with the log's key (c2sp.org/signed-note, Ed25519), gets it cosigned per the witness policy, and
 * publishes it. Life of an entry:
 *
 *   append() → queue → batch (≤ batchMaxSize entries or batchMaxAgeMs) → leaf hashes and stored
 *   hashes → entry bundles + tiles written durably → `.state/tree` written (the commit point) →
 *   checkpoint signed → witnesses cosign → `checkpoint` written (published) → append() resolves
 *   with index, cosigned checkpoint and inclusion proof, while the batch's CAR is archived (the
 *   next batch starts once it is, so archiving still paces the log).
 *
 * Cadence (one checkpoint, one witness round and one CAR per batch): a batch is taken when
 * `batchMaxSize` entries wait (the size trigger), else once `batchMaxAgeMs` have passed since the
 * previous batch was taken (the age trigger: the minimum interval between checkpoints) and at least
 * {@link BATCH_GATHER_MS} since its oldest entry arrived (so the appends of one request, sequenced
 * together, share a batch). So under load checkpoints come at most every `batchMaxAgeMs` unless
 * batches fill up; on a log idle for `batchMaxAgeMs` a lone entry waits only the gather; and an entry
 * waits at most `batchMaxAgeMs` plus the batch before it. Batches, and so witness requests, never
 * overlap for one log.
 *
 * Nothing is acknowledged before the commit point, and the tree in `.state/tree` only ever grows,
 * so a crash at any moment loses no acknowledged entry and never rolls the log back. Files written
 * past the commit point by a batch that crashed are overwritten by the next batch; they were never
 * published, and the read routes only serve what a published checkpoint covers.
 *
 * A failed write (a write, fsync, rename or directory fsync of a bundle, tile, `.state/tree` or
 * `checkpoint`: issue 15 item 2) stops the log, like PostgreSQL after a failed fsync: what the
 * kernel may have dropped is never trusted. The batch's appends and every queued one are rejected
 * with {@link StorageFailedError}, later appends too, nothing more is written or published, and the
 * in-memory state stays at the last write that succeeded. Only a new {@link Log.open} (LogManager
 * reopens a failed log at its next acquire) continues, from what the files say, after
 * `recommit` has written the commit point and the checkpoint again, durably.
 */
import {
  type Hash,
  type NoteSigner,
  type NoteVerifier,
  EntryTooLargeError,
  MAX_ENTRY_SIZE,
  TILE_WIDTH,
  encodeBase64,
  entryBundlePath,
  formatCheckpoint,
  formatEntryBundle,
  leafHash,
  newTiles,
  proveRecord,
  proveRecords,
  proveTree,
  readTileData,
  signNote,
  storedHashCount,
  storedHashes,
  tilePath,
  tileWidth,
  treeHash,
} from '../tlog/index.js'
import { CHECKPOINT_PATH, CorruptLogError, STATE_PATH, checkStoredState, formatStoredTree, readEntries } from './state.js'
import { FENCED_OUT_ERROR, type LogArchive, type LogFiles } from './storage.js'
import type { TileCache } from './tile-cache.js'
import { TileHashes } from './tile-hashes.js'
import type { CosignResult, ProveConsistency } from './witness-client.js'

/** Default maximum entries per batch (Tessera's DefaultBatchMaxSize). */
export const DEFAULT_BATCH_MAX_SIZE = 256
/** Default minimum interval between two batches of one log, ms, and so the longest an entry waits for its batch (the value of Tessera's DefaultBatchMaxAge). */
export const DEFAULT_BATCH_MAX_AGE_MS = 250
/**
 * How long a batch gathers after its oldest entry (ms) when the minimum interval since the previous
 * batch has already passed: long enough for the appends of one request, sequenced in the same few
 * event-loop turns, to share one checkpoint; short next to a witness round. Capped by `batchMaxAgeMs`.
 */
export const BATCH_GATHER_MS = 5
/** Default entries accepted but not yet integrated before appends are refused with {@link PushbackError}. */
export const DEFAULT_MAX_PENDING = 4096
/**
 * Default most entries one log may hold (integrated + pending): 10,000,000, so one space's disk is
 * at most about 10 M × (entry ≤ 64 KiB + 2-byte bundle prefix + ~32 bytes of tile hashes), plus
 * the same entries again in its CARs. Raise it for logs that are meant to be larger.
 */
export const DEFAULT_MAX_ENTRIES = 10_000_000
/** Default delay (ms) before retrying publication after the witness quorum was not met; doubles to 30 s. */
export const DEFAULT_PUBLISH_RETRY_MS = 1000


/** An entry over 65535 bytes: src/tlog's (c2sp.org/tlog-tiles entry bundles use a uint16 length prefix). */
export { EntryTooLargeError }
/** An empty entry. */
export class EmptyEntryError extends Error {
  override name = 'EmptyEntryError'
}
/** Too many entries waiting to be integrated; retry later. */
export class PushbackError extends Error {
  override name = 'Pushback'
}
/** The log holds its maximum number of entries ({@link LogOptions.maxEntries}); nothing was appended. */
export class LogFullError extends Error {
  override name = 'LogFull'
}
/** The log was closed. */
export class LogClosedError extends Error {
  override name = 'LogClosed'
}
/**
 * A write, fsync, rename or directory fsync of this log's files failed (issue 15 item 2: EIO, a
 * full disk, …; the original error is the `cause`). The log stopped: nothing past the failure is
 * trusted, the appends of the failed batch and every one after it are refused with this error until
 * the log is reopened ({@link Log.open} with `recommit`; LogManager does it at the next acquire).
 * The refused entries were not acknowledged; an entry of the failed batch may still be in the log
 * after the reopen (its commit point may have reached the disk), never an acknowledged one lost.
 */
export class StorageFailedError extends Error {
  override name = 'StorageFailed'
  constructor(readonly log: string, cause: unknown) {
    const code = (cause as { code?: unknown } | null)?.code
    super(`a write of this log's storage failed${typeof code === 'string' ? ` (${code})` : ''}; the log refuses appends until it is reopened`, { cause })
  }
}
/** Stored state is unusable (see state.ts): refuse to serve or append. */
export { CorruptLogError }

/**
 * Gets a checkpoint cosigned by the witnesses of the policy until its quorum is met (c2sp.org/tlog-witness,
 * c2sp.org/tlog-policy); a {@link import('./witness-client.js').WitnessClient} in production. Not a
 * witness key: that is tlog's `Cosigner`.
 */
export interface WitnessQuorum {
  cosign(checkpoint: string, size: number, prove: ProveConsistency): Promise<CosignResult>
}

/** Options of {@link Log.open}; batching and retry knobs default to the exported `DEFAULT_…` constants (entries, ms). */
export interface LogOptions {
  /** The log id: the space DID. */
  id: string
  /** The checkpoint origin, `<prefix>/logs/<spaceDID>` (c2sp.org/tlog-checkpoint). */
  origin: string
  /** Signs checkpoints; its key name must equal `origin`. */
  signer: NoteSigner
  /** The signer's public key: when given, the stored checkpoint's signature is checked at open. */
  verifier?: NoteVerifier
  files: LogFiles
  archive?: LogArchive
  witnesses: WitnessQuorum
  /** Most entries per batch (entries, 1..65,536); default {@link DEFAULT_BATCH_MAX_SIZE}. */
  batchMaxSize?: number
  /** Minimum interval between two batches, ms, ≥ 0 (see the module comment, "Cadence"); default {@link DEFAULT_BATCH_MAX_AGE_MS}. */
  batchMaxAgeMs?: number
  maxPending?: number
  /** Most entries the log may hold, integrated and pending (entries, ≥ 1); default {@link DEFAULT_MAX_ENTRIES}. */
  maxEntries?: number
  publishRetryMs?: number
  /** Where the log's hash tiles are cached (shared by the logs of a process); default the process's `sharedTileCache()`. */
  tileCache?: TileCache
  logger?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void; error(o: object, msg?: string): void }
  /** Called after each checkpoint is published, with its tree size (entries) and root hash (32 bytes); must not throw (e.g. the lookup index is told to catch up). */
  onPublished?: (size: number, rootHash: Hash) => void
  /**
   * Reopening after a {@link StorageFailedError}: before anything else, write `.state/tree` and
   * `checkpoint` again (new files, fsynced, renamed, directory fsynced) from what is read now, so
   * a commit point or checkpoint whose rename was visible but whose directory fsync failed is made
   * durable before anything builds on it. Default false.
   */
  recommit?: boolean
}

/**
 * Where an appended entry is, in engine terms (the RPC layer encodes it for the wire). Published:
 * the published checkpoint that includes it and the RFC 6962 §2.1.1 inclusion proof of the entry
 * in that checkpoint's tree. Not published (the witness quorum was not met in time; the entry is
 * durable and will be published later): the integrated tree it is in.
 */
export type Appended = {
  /** The log id: the space DID. */
  logId: string
  /** The checkpoint origin. */
  origin: string
  /** Position of the entry, 0-based. */
  index: number
} & ({ published: true; checkpoint: Published; inclusionProof: Hash[] } | { published: false; tree: { size: number; rootHash: Hash } })

/** The published state of a log: its checkpoint. */
export interface Published {
  /** Tree size, entries. */
  size: number
  /** RFC 6962 root hash of that tree. */
  rootHash: Hash
  /** The cosigned checkpoint note text. */
  note: string
}

interface Pending {
  entry: Uint8Array
  /** When it was queued (performance.now(), ms). */
  at: number
  resolve: (r: Appended) => void
  reject: (e: unknown) => void
}

/**
 * One log's sequencer and publisher (see the module comment for the life of an entry). Open it with
 * {@link Log.open}; all state changes run one at a time on an internal queue, so appends may be
 * called concurrently.
 */
export class Log {
  readonly id: string
  readonly origin: string
  private readonly o: Required<Omit<LogOptions, 'archive' | 'logger' | 'verifier' | 'tileCache' | 'onPublished' | 'recommit'>> & Pick<LogOptions, 'archive' | 'logger' | 'onPublished'>
  private readonly hashes: TileHashes
  private size: number
  private root: Hash
  private published: Published | undefined
  private queue: Pending[] = []
  /** Entries of the batch being integrated (out of the queue, not yet in `size`). */
  private integrating = 0
  /** When the last batch was taken (performance.now(), ms): the age trigger counts from it too. */
  private lastBatchAt = -Infinity
  private timer: NodeJS.Timeout | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private retryDelay: number
  private chain: Promise<void> = Promise.resolve()
  private closed = false
  /** Set by the first failed write: the log is stopped (see {@link StorageFailedError}). */
  private failure: Error | undefined

  private constructor(o: LogOptions, size: number, root: Hash, published: Published | undefined) {
    this.o = {
      batchMaxSize: DEFAULT_BATCH_MAX_SIZE,
      batchMaxAgeMs: DEFAULT_BATCH_MAX_AGE_MS,
      maxPending: DEFAULT_MAX_PENDING,
      maxEntries: DEFAULT_MAX_ENTRIES,
      publishRetryMs: DEFAULT_PUBLISH_RETRY_MS,
      ...o,
    }
    if (!(this.o.batchMaxSize >= 1)) throw new RangeError('batchMaxSize must be ≥ 1')
    if (!(this.o.batchMaxAgeMs >= 0)) throw new RangeError('batchMaxAgeMs must be ≥ 0')
    if (!(this.o.maxEntries >= 1)) throw new RangeError('maxEntries must be ≥ 1')
    if (o.signer.name !== o.origin) throw new RangeError('the log key name must equal the origin')
    this.id = o.id
    this.origin = o.origin
    this.hashes = new TileHashes(o.files, size, o.tileCache)
    this.size = size
    this.root = root
    this.published = published
    this.retryDelay = this.o.publishRetryMs
  }

  /**
   * Opens a log from its files (an empty log when there are none), checks that the stored tree
   * matches its tiles, and finishes any publication or archiving a crash interrupted.
   * @throws CorruptLogError when the stored root does not match the tiles or the checkpoint.
   */
  static async open(opts: LogOptions): Promise<Log> {
    const { size, root, published } = await checkStoredState(opts.files, { origin: opts.origin, verifier: opts.verifier })
    if (opts.recommit) {
      // The commit point first, then the checkpoint (never ahead of it), each rewritten as read.
      for (const path of [STATE_PATH, CHECKPOINT_PATH]) {
        const bytes = await opts.files.read(path)
        if (bytes) await opts.files.write([[path, bytes]])
      }
    }
    await removeUncommitted(opts.files, size)
    const log = new Log(opts, size, root, published)
    if ((published?.size ?? 0) < size) log.enqueue(() => log.publishThenArchive())
    else log.enqueue(() => log.archive())
    return log
  }

  /** Integrated tree size (entries), which may be ahead of the published checkpoint. */
  get treeSize(): number {
    return this.size
  }

  /** The published checkpoint, if any. */
  get checkpoint(): Published | undefined {
    return this.published
  }

  /**
   * True when closing the log would lose or delay nothing: no entry waiting for a batch and no
   * publication retry scheduled (a checkpoint waiting for witnesses keeps the log busy). Work
   * already running (the tail of a batch whose appends have been answered, archiving) does not
   * count: {@link close} waits for it.
   */
  get idle(): boolean {
    return !this.closed && this.queue.length === 0 && this.timer === undefined && this.retryTimer === undefined
  }

  /** The error that stopped the log — a {@link StorageFailedError}, or the backend's fencing error ({@link FENCED_OUT_ERROR}) — if a write failed; it must be reopened. */
  get failed(): Error | undefined {
    return this.failure
  }

  /** Resolves once the operations queued so far (e.g. the publication or archiving started at open) have finished. */
  settled(): Promise<void> {
    return this.chain
  }

  /**
   * Appends one entry (1..65535 bytes). Resolves once it is durable and the batch's checkpoint has
   * been published, or with `published: false` when the witness quorum was not met.
   * @throws EntryTooLargeError, EmptyEntryError, PushbackError, LogFullError, LogClosedError, StorageFailedError
   */
  append(entry: Uint8Array): Promise<Appended> {
    if (this.failure) return Promise.reject(this.failure)
    if (this.closed) return Promise.reject(new LogClosedError('log is closed'))
    if (entry.length === 0) return Promise.reject(new EmptyEntryError('entry is empty'))
    if (entry.length > MAX_ENTRY_SIZE) return Promise.reject(new EntryTooLargeError(`entry is ${entry.length} bytes, the maximum is ${MAX_ENTRY_SIZE}`))
    if (this.queue.length >= this.o.maxPending) return Promise.reject(new PushbackError(`${this.queue.length} entries pending; retry later`))
    if (this.size + this.integrating + this.queue.length >= this.o.maxEntries) {
      return Promise.reject(new LogFullError(`the log holds its maximum of ${this.o.maxEntries} entries`))
    }
    return new Promise<Appended>((resolve, reject) => {
      this.queue.push({ entry: new Uint8Array(entry), at: performance.now(), resolve, reject })
      this.flushSoon(this.untilDue())
    })
  }

  /**
   * Reads published entries [offset, offset+limit) (fewer at the end); total = published size.
   * Stops before the entry that would take the entries' total length past `maxBytes` (default
   * unbounded), reading no further bundle: a read holds at most `maxBytes` of entries plus the one
   * bundle file it is reading (≤ 256 entries).
   * @param offset integer ≥ 0. @param limit entries, integer ≥ 0. @param maxBytes bytes, integer ≥ 0.
   */
  async read(offset: number, limit: number, maxBytes = Infinity): Promise<{ entries: Uint8Array[]; total: number }> {
    const total = this.published?.size ?? 0
    return { entries: await readEntries(this.o.files, total, offset, limit, maxBytes), total }
  }

  /** Reads one of the log's files by its c2sp.org/tlog-tiles path (callers check it is published). */
  readFile(path: string): Promise<Uint8Array | undefined> {
    return this.o.files.read(path)
  }

  /** RFC 6962 §2.1.1 inclusion proof of entry `index` in the tree of `size` entries (≤ integrated size). */
  proveInclusion(size: number, index: number): Promise<Hash[]> {
    return proveRecord(size, index, this.hashes)
  }

  /** RFC 6962 §2.1.2 consistency proof from `oldSize` to `newSize` (≤ integrated size). */
  proveConsistency(newSize: number, oldSize: number): Promise<Hash[]> {
    return proveTree(newSize, oldSize, this.hashes)
  }

  /** Integrates what is queued, stops timers and waits for in-flight work. Later appends are refused. */
  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.timer)
    clearTimeout(this.retryTimer)
    this.enqueue(() => this.drain())
    await this.chain
    clearTimeout(this.timer)
    clearTimeout(this.retryTimer)
    this.timer = this.retryTimer = undefined
    await this.o.archive?.close?.()
  }

  private flushSoon(delayMs: number): void {
    if (this.timer && delayMs > 0) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.enqueue(() => this.drain())
    }, delayMs)
  }

  private enqueue(op: () => Promise<void>): void {
    this.chain = this.chain.then(op).catch((err) => this.o.logger?.error({ err, log: this.id }, 'log operation failed'))
  }

  /**
   * When the next batch is due (performance.now(), ms): now when `batchMaxSize` entries wait or the
   * log is closing, else `batchMaxAgeMs` after the previous batch and at least the gather
   * ({@link BATCH_GATHER_MS}, at most `batchMaxAgeMs`) after the oldest entry.
   */
  private dueAt(): number {
    if (this.closed || this.queue.length >= this.o.batchMaxSize) return -Infinity
    const gather = Math.min(this.o.batchMaxAgeMs, BATCH_GATHER_MS)
    return Math.max(this.queue[0]!.at + gather, this.lastBatchAt + this.o.batchMaxAgeMs)
  }

  /** Whole ms until the next batch is due ({@link dueAt}), 0 when it is due now. */
  private untilDue(): number {
    return Math.max(0, Math.ceil(this.dueAt() - performance.now()))
  }

  /** Integrates and publishes queued entries, one batch at a time, while batches are due (see the module comment). */
  private async drain(): Promise<void> {
    while (this.queue.length) {
      const wait = this.untilDue()
      if (wait > 0) {
        clearTimeout(this.timer)
        this.timer = undefined
        this.flushSoon(wait)
        return
      }
      this.lastBatchAt = performance.now()
      const batch = this.queue.splice(0, this.o.batchMaxSize)
      const start = this.size
      this.integrating = batch.length
      try {
        await this.integrate(batch.map((p) => p.entry))
      } catch (err) {
        for (const p of batch) p.reject(err)
        if (err === this.failure) return // stopped: logged once by fail()
        throw err
      } finally {
        this.integrating = 0
      }
      // The batch is durable; if publication fails it is retried and the appends answer unpublished.
      await this.publishOrRetry()
      // Its CAR is packed while its appends are answered (they need only the files and the
      // checkpoint), and before the next batch is taken. Never rejects.
      const archived = this.archive()
      const answers = await this.results(start, batch.length)
      batch.forEach((p, k) => p.resolve(answers[k]!))
      await archived
    }
  }

  /** Adds entries to the tree: bundles and tiles, then the `.state/tree` commit point. */
  private async integrate(entries: Uint8Array[]): Promise<void> {
    const old = this.size
    const h = this.hashes
    h.overlay.clear()
    let n = old
    try {
      for (const e of entries) {
        const hashes = await storedHashes(n, leafHash(e), h)
        const base = storedHashCount(n)
        hashes.forEach((x, j) => h.overlay.set(base + j, x))
        n++
      }
      const root = await treeHash(n, h)
      const files = new Map<string, Uint8Array>()
      // Entry bundles: every bundle the batch touched, at its new width.
      // The right-edge bundle's entries are read back, not kept: a log holds no entry between batches.
      const edge = old % TILE_WIDTH === 0 ? [] : await readEntries(this.o.files, old, old - (old % TILE_WIDTH), old % TILE_WIDTH)
      let bundleIndex = Math.floor(old / TILE_WIDTH)
      for (const e of entries) {
        edge.push(e)
        if (edge.length === TILE_WIDTH) {
          files.set(entryBundlePath(bundleIndex, TILE_WIDTH), formatEntryBundle(edge))
          edge.length = 0
          bundleIndex++
        }
      }
      if (edge.length > 0) files.set(entryBundlePath(bundleIndex, edge.length), formatEntryBundle(edge))
      const tiles = newTiles(old, n)
      const tileData = await Promise.all(tiles.map((t) => readTileData(t, h)))
      tiles.forEach((t, k) => files.set(tilePath(t), tileData[k]!))
      await this.durably(() => this.o.files.write(files))
      await this.durably(() => this.o.files.write([[STATE_PATH, formatStoredTree({ size: n, root })]]))
      tiles.forEach((t, k) => h.remember(t, tileData[k]!))
      this.size = n
      this.root = root
      h.size = n
    } finally {
      h.overlay.clear()
      h.size = this.size
    }
  }

  /** Signs a checkpoint for the integrated tree, gets it cosigned and publishes it when the quorum is met. */
  private async publish(): Promise<void> {
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    if ((this.published?.size ?? -1) === this.size) return
    const size = this.size
    const root = this.root
    const text = formatCheckpoint({ origin: this.origin, size, rootHash: root, extension: '' })
    const signed = signNote(text, [this.o.signer])
    const result = await this.o.witnesses.cosign(signed, size, (old) => proveTree(size, old, this.hashes))
    if (!result.satisfied) {
      this.o.logger?.warn({ log: this.id, size, cosigned: [...result.cosigned] }, 'witness quorum not met; checkpoint not published, will retry')
      this.scheduleRetry()
      return
    }
    await this.durably(() => this.o.files.write([[CHECKPOINT_PATH, Buffer.from(result.note, 'utf8')]]))
    this.published = { size, rootHash: root, note: result.note }
    this.retryDelay = this.o.publishRetryMs
    this.o.logger?.info({ log: this.id, size, witnesses: [...result.cosigned] }, 'checkpoint published')
    this.o.onPublished?.(size, root)
  }

  /** Publishes the integrated tree (retrying later on failure), then archives what was published. */
  private async publishThenArchive(): Promise<void> {
    await this.publishOrRetry()
    await this.archive()
  }

  private async publishOrRetry(): Promise<void> {
    if (this.failure) return
    try {
      await this.publish()
    } catch (err) {
      if (err === this.failure) return // stopped: logged once by fail()
      this.o.logger?.error({ err, log: this.id }, 'publishing checkpoint failed; will retry')
      this.scheduleRetry()
    }
  }

  /** Runs a write of the log's files; a failure stops the log ({@link fail}) and rejects with the error that stopped it. */
  private async durably(write: () => Promise<void>): Promise<void> {
    try {
      await write()
    } catch (err) {
      throw this.fail(err)
    }
  }

  /**
   * Stops the log after a failed write (see {@link StorageFailedError}, {@link FENCED_OUT_ERROR}): refuses every queued append,
   * cancels timers and the publication retry; logged once. Returns the error the log now answers.
   */
  private fail(cause: unknown): Error {
    if (this.failure) return this.failure
    // Fenced out (another instance writes this log now): refused by that name, not as a failed disk.
    const failure = cause instanceof Error && cause.name === FENCED_OUT_ERROR ? cause : new StorageFailedError(this.id, cause)
    this.failure = failure
    clearTimeout(this.timer)
    clearTimeout(this.retryTimer)
    this.timer = this.retryTimer = undefined
    for (const p of this.queue.splice(0)) p.reject(failure)
    if (failure === cause) this.o.logger?.warn({ log: this.id, reason: failure.message }, 'log fenced out: another instance writes it now; refusing appends until it is reopened')
    else this.o.logger?.error({ err: cause, log: this.id }, 'log storage write failed: the log refuses appends until it is reopened')
    return failure
  }

  private scheduleRetry(): void {
    if (this.closed || this.failure) return
    clearTimeout(this.retryTimer)
    const delay = this.retryDelay
    this.retryDelay = Math.min(this.retryDelay * 2, 30_000)
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      this.enqueue(() => this.publishThenArchive())
    }, delay)
    this.retryTimer.unref()
  }

  /** Packs the files published since the newest CAR into a new CAR. Failures are logged and retried next time. */
  private async archive(): Promise<void> {
    const a = this.o.archive
    const p = this.published
    if (!a || !p || a.lastTreeSize >= p.size) return
    try {
      const from = a.lastTreeSize
      const files = new Map<string, Uint8Array>()
      for (const t of newTiles(from, p.size)) files.set(tilePath(t), await readTileData(t, this.hashes))
      const first = Math.floor(from / TILE_WIDTH)
      const last = Math.floor((p.size - 1) / TILE_WIDTH)
      for (let n = first; n <= last; n++) {
        const w = Math.min(TILE_WIDTH, p.size - n * TILE_WIDTH)
        const path = entryBundlePath(n, w)
        const bytes = await this.o.files.read(path)
        if (!bytes) throw new CorruptLogError(`entry bundle ${path} missing`, path)
        files.set(path, bytes)
      }
      files.set(CHECKPOINT_PATH, Buffer.from(p.note, 'utf8'))
      await a.pack(p.size, files)
    } catch (err) {
      this.o.logger?.error({ err, log: this.id }, 'archiving checkpoint failed; will retry at the next checkpoint')
    }
  }

  /**
   * Where entries `first`… (`count` of them) are: in the published checkpoint, each with its
   * inclusion proof, if that covers them (one read of the stored hashes for all: proveRecords);
   * else, or if the proofs cannot be read, in the integrated tree.
   */
  private async results(first: number, count: number): Promise<Appended[]> {
    const p = this.published
    const proofs = p && p.size >= first + count ? await proveRecords(p.size, first, count, this.hashes).catch(() => undefined) : undefined
    if (!p || !proofs) return Array.from({ length: count }, (_, k) => this.unpublished(first + k))
    return proofs.map((inclusionProof, k) => ({ logId: this.id, origin: this.origin, index: first + k, published: true, checkpoint: p, inclusionProof }))
  }

  /** Where entry `index` is when no published checkpoint covers it: in the integrated tree. */
  private unpublished(index: number): Appended {
    return { logId: this.id, origin: this.origin, index, published: false, tree: { size: this.size, rootHash: this.root } }
  }
}

/**
 * Removes the right-edge partial tiles and bundles wider than the committed tree: a batch that
 * crashed before its commit point may have written them, and they hold entries that were never
 * acknowledged. (Full tiles past the commit point are rewritten by the batch that commits them.)
 */
async function removeUncommitted(files: LogFiles, size: number): Promise<void> {
  const paths: string[] = []
  for (let level = 0; TILE_WIDTH ** level <= Math.max(size, 1) * TILE_WIDTH; level++) {
    const index = Math.floor(size / TILE_WIDTH ** (level + 1))
    for (let w = tileWidth(level, index, size) + 1; w < TILE_WIDTH; w++) {
      paths.push(tilePath({ level, index, width: w }))
      if (level === 0) paths.push(entryBundlePath(index, w))
    }
  }
  await files.remove(paths)
}

