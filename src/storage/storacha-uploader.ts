/**
 * Stores each published checkpoint's CAR in the log's Storacha space, through the customer's
 * Agent→Service delegation, with the standard Storacha flow of `@storacha/upload-client`
 * (`uploadCAR`): `space/blob/add` → HTTP PUT of the bytes → `ucan/conclude` of the `http/put`
 * receipt → polling `<receipts endpoint><task>` for `blob/accept`; then the sharded DAG index blob
 * the same way and `space/index/add`; then `upload/add(root, [shard])`. The issuer is the service
 * signer, the resource the space DID, the proof the Agent→Service delegation of the log's most
 * recent append (UploadQueue.setDelegation). `filecoin/offer` is not invoked (pieceHasher: null): the
 * delegation carries only the three capabilities above.
 *
 * Jobs come from a durable queue, oldest checkpoints first: this process's SQLite UploadQueue, or
 * the PostgreSQL queue several instances share (postgres/pg-upload-queue.ts: each group is claimed
 * by one instance, a dead instance's claim passes to another; the uploader then also looks for due
 * work every `pollMs` of the queue, since other instances fill it). Pending checkpoints of one log
 * are coalesced: one attempt takes the log's oldest pending checkpoints (at most `batchCheckpoints`
 * of them and `batchBytes` of CAR, at least one) and stores the blocks of all their CARs as ONE CAR
 * shard (`uploadBlocks`: deduplicated, rooted at the newest checkpoint's root, its index blob and
 * `space/index/add`, `upload/add(newest root, [shard])`), then registers each earlier checkpoint's
 * root with `upload/add(root, [shard])`, all in one ucanto request. So every checkpoint is still an
 * upload of the space, with its blocks in the space byte for byte, and an outage of N checkpoints
 * costs ⌈N / batchCheckpoints⌉ blob uploads instead of N. A group is done only when every one of
 * its `upload/add`s succeeded (then all its jobs are marked done at once); otherwise all fail
 * together and the group is retried (its blobs are reused when it is the same group).
 * One group per log in flight (in the whole service, with the shared queue), at most `concurrency` logs at once per process.
 *
 * A failed attempt is retried with exponential backoff (retryMinMs doubling to retryMaxMs),
 * scheduled on a monotonic clock (anchored at the wall clock when the uploader starts), so a jump of
 * the wall clock neither stalls nor bursts the retries; at start, pending jobs scheduled further
 * than retryMaxMs ahead are brought back to it. A new delegation for the log makes its jobs due at
 * once. Failures get a stable name, shown in the log's status and logged once per attempt:
 *
 *   SpaceNotProvisioned          the space has no storage provider (Storacha `InsufficientStorage`)
 *   DelegationMissingCapability  the delegation does not grant a capability Storacha checked (`Unauthorized`)
 *   DelegationExpired            the delegation (or a proof in its chain) has expired
 *   NoDelegation                 the log has received no delegation yet (e.g. right after a restore)
 *   StorachaUnavailable          network error, HTTP error or timeout talking to Storacha
 *   CarMissing                   the CAR file is gone from the data directory
 *   UploadFailed                 anything else (the message says what Storacha answered)
 */
import { performance } from 'node:perf_hooks'
import * as Client from '@ucanto/client'
import { DID } from '@ucanto/core'
import type { API } from '@ucanto/core'
import * as CAR from '@ucanto/transport/car'
import * as HTTP from '@ucanto/transport/http'
import { CAR as StorachaCAR, uploadBlocks } from '@storacha/upload-client'
import * as UploadCapabilities from '@storacha/capabilities/upload'
import { CID } from 'multiformats/cid'
import { STORACHA_ABILITIES } from './storacha-capabilities.js'
import { DEFAULT_UPLOAD_BACKLOG_MAX, expiryOf, type UploadError, type UploadJob, type UploadQueueStore, type UploadStatus } from './upload-queue.js'

/** Production upload service URL. */
export const DEFAULT_STORACHA_URL = 'https://up.storacha.network'
/** Production upload service DID (the audience of every invocation). */
export const DEFAULT_STORACHA_DID = 'did:web:up.storacha.network'
/** Production receipts endpoint (`<endpoint><task CID>`). */
export const DEFAULT_RECEIPTS_ENDPOINT = 'https://up.storacha.network/receipt/'
/** Default first retry delay after a failed upload, ms. */
export const DEFAULT_UPLOAD_RETRY_MIN_MS = 1000
/** Default longest delay between upload attempts, ms (5 min). */
export const DEFAULT_UPLOAD_RETRY_MAX_MS = 300_000
/** Default logs whose uploads are in flight at once (one group of checkpoints each). */
export const DEFAULT_UPLOAD_CONCURRENCY = 16
/** Default most checkpoints of one log stored by one upload (one CAR shard). */
export const DEFAULT_UPLOAD_BATCH_CHECKPOINTS = 32
/** Default most bytes of checkpoint CARs stored by one upload (the group is held in memory while it is sent): 16 MiB. */
export const DEFAULT_UPLOAD_BATCH_BYTES = 16 * 1024 * 1024
/** Default p-retry retries inside one upload-client call (receipt polling, PUT). */
export const DEFAULT_CLIENT_RETRIES = 3

/**
 * The log has `backlogMax` checkpoints waiting for upload: its append is refused (name
 * `UploadBacklogFull`, passed to the client by the RPC layer); `retryAfter` is in seconds.
 */
export class UploadBacklogFullError extends Error {
  override name = 'UploadBacklogFull'
  constructor(
    readonly pending: number,
    readonly retryAfter: number,
    reason: string,
  ) {
    // ≤ 100 characters: the RPC layer cuts refusal messages there (errors.ts MAX_DETAIL_LENGTH).
    super(`${pending} checkpoints wait for upload to the space (${reason}); retry after ${retryAfter} s`)
  }
}

/** Where uploads go. */
export interface StorachaTarget {
  /** Upload service URL (ucanto POST endpoint). */
  url: string
  /** Upload service DID. */
  did: string
  /** Receipts endpoint, ending in `/`. */
  receiptsEndpoint: string
}

/** Options of StorachaUploader. */
export interface StorachaUploaderOptions {
  /** The durable queue: this process's SQLite one, or the PostgreSQL one every instance drains (each group claimed by one). */
  queue: UploadQueueStore
  /** The service signer: the issuer of every invocation (the audience of the customer's delegation). */
  signer: API.Signer
  target: StorachaTarget
  /** First retry delay, ms (default DEFAULT_UPLOAD_RETRY_MIN_MS). */
  retryMinMs?: number
  /** Longest retry delay, ms (default DEFAULT_UPLOAD_RETRY_MAX_MS). */
  retryMaxMs?: number
  /** Logs whose uploads are in flight at once (default DEFAULT_UPLOAD_CONCURRENCY). */
  concurrency?: number
  /** Most checkpoints of one log per upload, integer ≥ 1 (default DEFAULT_UPLOAD_BATCH_CHECKPOINTS). */
  batchCheckpoints?: number
  /** Most bytes of CARs per upload (a single larger CAR still goes alone), integer ≥ 1 (default DEFAULT_UPLOAD_BATCH_BYTES). */
  batchBytes?: number
  /** upload-client retries per call (default DEFAULT_CLIENT_RETRIES). */
  clientRetries?: number
  /** Most pending checkpoints of one log before {@link StorachaUploader.admit} refuses its appends, integer ≥ 1 (default DEFAULT_UPLOAD_BACKLOG_MAX). */
  backlogMax?: number
  /** Wall clock, Unix ms (default Date.now): delegation expiry, and the anchor of the schedule's clock. */
  now?: () => number
  /** Monotonic clock, ms from any origin (default performance.now): the retry schedule. */
  monotonic?: () => number
  /** Called after each upload attempt with `ok` or the failure's stable name (module comment), for the metrics. */
  onAttempt?: (result: string) => void
  /** Called each time {@link StorachaUploader.admit} refuses an append, for the metrics. */
  onBacklogFull?: (space: string) => void
  /** pino-compatible logger. */
  logger?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void; error(o: object, msg?: string): void }
}

/** Checkpoint CARs were uploaded together: the jobs (oldest first) and the shard that holds them. */
export interface UploadedEvent {
  /** The jobs of the group, oldest first; each one's root is now an upload of the space. */
  jobs: UploadJob[]
  /** CID of the CAR shard that holds every block of their CARs. */
  shard: string
}

/**
 * Runs the upload queue; see the module comment. start() begins work, close() stops it (an upload
 * in flight finishes or fails first; its job stays pending if it did not finish).
 */
export class StorachaUploader {
  readonly target: StorachaTarget
  private readonly o: StorachaUploaderOptions
  private readonly now: () => number
  /** The schedule's clock, Unix ms: the wall clock at construction plus monotonic time since. */
  private readonly clock: () => number
  private readonly minMs: number
  private readonly maxMs: number
  private readonly connection: ReturnType<typeof Client.connect>
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private again = false
  /** Clock ms before which no upload is attempted: set when the queue itself could not be written (a full disk). */
  private pausedUntil = 0
  private closed = false
  private readonly listeners = new Set<(e: UploadedEvent) => void>()

  constructor(o: StorachaUploaderOptions) {
    this.o = o
    this.target = o.target
    this.now = o.now ?? Date.now
    const mono = o.monotonic ?? (() => performance.now())
    const anchor = this.now() - mono()
    this.clock = () => Math.round(anchor + mono())
    this.maxMs = o.retryMaxMs ?? DEFAULT_UPLOAD_RETRY_MAX_MS
    this.minMs = Math.min(o.retryMinMs ?? DEFAULT_UPLOAD_RETRY_MIN_MS, this.maxMs)
    if (!(this.minMs > 0)) throw new RangeError('retry delays must be positive')
    for (const [k, v] of [['batchCheckpoints', o.batchCheckpoints], ['batchBytes', o.batchBytes], ['concurrency', o.concurrency], ['backlogMax', o.backlogMax]] as const) {
      if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new RangeError(`${k} must be an integer ≥ 1`)
    }
    new URL(o.target.url)
    new URL(o.target.receiptsEndpoint)
    this.connection = Client.connect({
      id: DID.parse(o.target.did as `did:${string}:${string}`),
      codec: CAR.outbound,
      channel: HTTP.open({ url: new URL(o.target.url), method: 'POST' }),
    })
  }

  /** Starts working through due jobs (a pending job scheduled more than retryMaxMs ahead is due within retryMaxMs). */
  start(): void {
    let clamped: void | Promise<void>
    try {
      clamped = this.o.queue.clampNextAt(this.clock() + this.maxMs)
    } catch (err) {
      clamped = Promise.reject(err)
    }
    void Promise.resolve(clamped)
      .catch((err) => void this.o.logger?.warn({ err }, 'upload queue: cannot bring far schedules back; uploads go on'))
      .finally(() => this.kick())
  }

  /** Looks for due jobs now: the caller's storage queued some itself (PostgreSQL: in the pack's transaction). */
  poke(): void {
    this.kick()
  }

  /**
   * Queues a packed checkpoint CAR for upload (idempotent) and wakes the worker.
   * @param pack what CarPacker.pack resolved (root and carCid are CIDs, file an absolute path).
   */
  enqueue(space: string, pack: { treeSize: number; root: { toString(): string }; carCid: { toString(): string }; file: string }): void {
    const added = this.o.queue.enqueue({ space, treeSize: pack.treeSize, root: pack.root.toString(), carFile: pack.file, carCid: pack.carCid.toString() }, this.clock())
    if (added === true) this.kick()
    else if (added !== false) void added.then((n) => n && this.kick(), (err) => void this.o.logger?.warn({ err, log: space }, 'upload queue: cannot queue a checkpoint CAR'))
  }

  /**
   * Records the Agent→Service delegation of an append to `space`; a different one than the kept
   * one replaces it and makes the log's pending uploads due at once.
   */
  async rememberDelegation(space: string, delegation: API.Delegation): Promise<void> {
    if (await this.o.queue.setDelegation(space, delegation)) {
      await this.o.queue.wake(space, this.clock())
      this.kick()
    }
  }

  /**
   * Admits an append to `space` with respect to its upload backlog: first keeps its delegation
   * (as {@link rememberDelegation}: a fresh one makes the log's uploads due at once), then refuses
   * when `backlogMax` of the log's checkpoints wait for upload. Only this log is refused; entries
   * already acknowledged stay queued (nothing is dropped). One indexed count per call.
   * @throws UploadBacklogFullError, retryAfter = seconds until the log's next upload attempt (1 ..
   *   retryMaxMs / 1000, rounded up).
   */
  async admit(space: string, delegation: API.Delegation | undefined): Promise<void> {
    if (delegation) await this.rememberDelegation(space, delegation)
    const pending = await this.o.queue.pendingCount(space)
    if (pending < (this.o.backlogMax ?? DEFAULT_UPLOAD_BACKLOG_MAX)) return
    this.o.onBacklogFull?.(space)
    const status = await this.o.queue.status(space)
    const wait = Math.min(this.maxMs, Math.max(0, (status?.nextAttemptAt ?? 0) - this.clock()))
    throw new UploadBacklogFullError(pending, Math.max(1, Math.ceil(wait / 1000)), status?.error ? status.error.name : 'uploading')
  }

  /** The upload status of `space` (undefined when nothing was ever queued for it). */
  status(space: string): UploadStatus | undefined | Promise<UploadStatus | undefined> {
    return this.o.queue.status(space)
  }

  /** Calls `f` after every successful upload (tests and metrics). Returns an unsubscribe function. */
  onUploaded(f: (e: UploadedEvent) => void): () => void {
    this.listeners.add(f)
    return () => this.listeners.delete(f)
  }

  /** Stops the worker; waits for an attempt in flight. Idempotent. */
  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.timer)
    await this.running
  }

  private kick(): void {
    if (this.closed) return
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.running) {
      this.again = true
      return
    }
    // Never an unhandled rejection (it would end the process): a failure here is the queue's own
    // (its database unreadable); logged, and the next kick or schedule tries again.
    this.running = this.work().catch((err) => void this.o.logger?.error({ err }, 'upload queue failed; uploads retried later')).finally(() => {
      this.running = undefined
      if (this.again) {
        this.again = false
        this.kick()
      } else this.schedule()
    })
  }

  private schedule(): void {
    if (this.closed) return
    const poll = this.o.queue.pollMs
    const arm = (due: number | undefined) => {
      if (this.closed || this.running) return // a kick since: it schedules again when it ends
      if (due === undefined && poll === undefined) return
      const next = Math.max(due ?? Infinity, this.pausedUntil)
      clearTimeout(this.timer)
      this.timer = setTimeout(() => this.kick(), Math.min(this.maxMs, poll ?? Infinity, Math.max(0, next - this.clock())))
      this.timer.unref()
    }
    // The queue unreadable (its database down): look again after a poll (or the longest backoff).
    const failed = (err: unknown) => {
      this.o.logger?.warn({ err }, 'upload queue unreadable; looking again later')
      arm(this.clock() + Math.min(this.maxMs, poll ?? this.maxMs))
    }
    try {
      const due = this.o.queue.nextDue()
      if (due instanceof Promise) due.then(arm, failed)
      else arm(due)
    } catch (err) {
      failed(err)
    }
  }

  private async work(): Promise<void> {
    const perLog = this.o.batchCheckpoints ?? DEFAULT_UPLOAD_BATCH_CHECKPOINTS
    for (;;) {
      if (this.closed || this.clock() < this.pausedUntil) return
      const groups = await this.o.queue.dueGroups(this.clock(), perLog, this.o.concurrency ?? DEFAULT_UPLOAD_CONCURRENCY)
      if (groups.length === 0) return
      await Promise.all(groups.map((g) => this.attempt(g)))
    }
  }

  /** Uploads one group of a log's oldest pending jobs (trimmed to batchBytes), or records its failure. */
  private async attempt(candidates: UploadJob[]): Promise<void> {
    const log = this.o.logger
    const space = candidates[0]!.space
    let group = candidates.slice(0, 1)
    try {
      group = await this.withinBytes(candidates)
      const shard = await this.upload(group)
      await this.o.queue.markDone(space, group.map((j) => j.treeSize), this.clock())
      this.o.onAttempt?.('ok')
      const newest = group[group.length - 1]!
      log?.info({ log: space, treeSize: newest.treeSize, checkpoints: group.length, root: newest.root, shard }, 'checkpoint CARs stored in the space')
      for (const f of this.listeners) f({ jobs: group, shard })
    } catch (err) {
      const e = classifyUploadError(err, this.clock())
      const blocked = e.name !== 'StorachaUnavailable' && e.name !== 'UploadFailed'
      const attempts = group[0]!.attempts
      const delay = blocked ? this.maxMs : Math.min(this.maxMs, this.minMs * 2 ** Math.min(attempts, 30))
      try {
        await this.o.queue.markFailed(space, group.map((j) => j.treeSize), e, this.clock() + delay)
      } catch (qerr) {
        // The queue itself cannot be written (a full disk): the jobs stay pending as they were, so
        // pause every attempt for the delay instead of retrying them at once, and never reject.
        this.pausedUntil = Math.max(this.pausedUntil, this.clock() + delay)
        log?.warn({ log: space, error: (qerr as Error).name, code: (qerr as { code?: unknown }).code, retryInMs: delay }, 'upload queue cannot be written; uploads paused')
      }
      this.o.onAttempt?.(e.name)
      const line = { log: space, treeSize: group[0]!.treeSize, checkpoints: group.length, error: e.name, message: e.message, attempt: attempts + 1, retryInMs: delay }
      if (blocked) log?.error(line, `cannot store the log in its space: ${e.name}`)
      else log?.warn(line, 'checkpoint upload failed; will retry')
    }
  }

  /** The longest prefix of `jobs` whose CARs total at most batchBytes (at least the first job). */
  private async withinBytes(jobs: UploadJob[]): Promise<UploadJob[]> {
    const max = this.o.batchBytes ?? DEFAULT_UPLOAD_BATCH_BYTES
    let total = 0
    const out: UploadJob[] = []
    for (const j of jobs) {
      let size: number
      try {
        size = await this.o.queue.carSize(j)
      } catch (err) {
        throw new Failure('CarMissing', `cannot read ${j.carFile}: ${(err as Error).message}`)
      }
      if (out.length > 0 && total + size > max) break
      total += size
      out.push(j)
    }
    return out
  }

  /** Stores the group's CARs as one shard and registers every job's root; returns the shard's CID. */
  private async upload(group: UploadJob[]): Promise<string> {
    const space = group[0]!.space
    const delegation = await this.o.queue.delegation(space)
    if (!delegation) throw new Failure('NoDelegation', 'no Agent→Service delegation received for this log yet; the next append brings one')
    const exp = expiryOf(delegation)
    if (exp * 1000 <= this.now()) {
      throw new Failure('DelegationExpired', `the Agent→Service delegation ${delegation.cid} (or a proof in it) expired at ${new Date(exp * 1000).toISOString()}; append with a fresh delegation`)
    }
    // Every block of every CAR, oldest first (uploadBlocks drops repeated blocks).
    const blocks: { cid: CID; bytes: Uint8Array }[] = []
    for (const job of group) {
      let bytes: Uint8Array
      try {
        bytes = await this.o.queue.readCar(job)
      } catch (err) {
        throw new Failure('CarMissing', `cannot read ${job.carFile}: ${(err as Error).message}`)
      }
      const car = await StorachaCAR.decode(new Blob([bytes]))
      if (car.roots[0]?.toString() !== job.root) throw new Failure('UploadFailed', `${job.carFile} has root ${car.roots[0]}, expected ${job.root}`)
      for (const b of car.blocks) blocks.push(b as never)
    }
    const newest = group[group.length - 1]!
    const conf = {
      issuer: this.o.signer,
      with: space as API.DIDKey,
      proofs: [delegation],
      audience: this.connection.id,
    }
    let shard: CID | undefined
    const root = await uploadBlocks(conf as never, blocks as never, {
      connection: this.connection as never,
      receiptsEndpoint: this.target.receiptsEndpoint,
      retries: this.o.clientRetries ?? DEFAULT_CLIENT_RETRIES,
      pieceHasher: null as never,
      rootCID: CID.parse(newest.root) as never,
      onShardStored: (meta) => {
        shard = CID.decode(meta.cid.bytes)
      },
    })
    if (root.toString() !== newest.root) throw new Failure('UploadFailed', `Storacha registered root ${root}, expected ${newest.root}`)
    if (!shard) throw new Failure('UploadFailed', 'the upload client stored no shard')
    // The earlier checkpoints' roots, each an upload of the same shard, in one request.
    const earlier = group.slice(0, -1)
    if (earlier.length > 0) {
      const invocations = earlier.map((job) =>
        UploadCapabilities.add.invoke({
          issuer: this.o.signer,
          audience: this.connection.id,
          with: space as API.DIDKey,
          nb: { root: CID.parse(job.root) as never, shards: [shard as never] },
          proofs: [delegation],
        }),
      )
      const execute = this.connection.execute.bind(this.connection) as unknown as (...i: unknown[]) => Promise<{ out: { error?: { name?: string; message?: string } } }[]>
      for (const r of await execute(...invocations)) {
        if (r.out.error) throw new Error(`failed ${UploadCapabilities.add.can} invocation`, { cause: r.out.error })
      }
    }
    return shard.toString()
  }
}

class Failure extends Error {
  constructor(name: string, message: string) {
    super(message)
    this.name = name
  }
}

/** The capabilities invoked on the space with the customer's delegation as proof. */
const DELEGATED = new Set<string>(STORACHA_ABILITIES)

/** Maps an upload-client error (whose `cause` is the receipt's `out.error`) to a named UploadError. */
export function classifyUploadError(err: unknown, at: number): UploadError {
  if (err instanceof Failure) return { name: err.name, message: err.message, at }
  const e = err as { name?: string; message?: string; cause?: { name?: string; message?: string; code?: string } }
  const cause = e?.cause
  const text = `${e?.message ?? String(err)}${cause?.message ? `: ${cause.name ?? ''} ${cause.message}` : ''}`
  const short = text.length > 500 ? `${text.slice(0, 500)}…` : text
  if (cause?.name === 'InsufficientStorage' || /has no storage provider/.test(text)) {
    return { name: 'SpaceNotProvisioned', message: `the space has no storage provider (provision it: storacha space provision): ${short}`, at }
  }
  // Unauthorized for a capability the service invokes with the customer's delegation: the
  // delegation is at fault. (Storacha's own internal invocations can fail too: those are UploadFailed.)
  const claimed = /Claim \{"can":"([^"]+)"\}/.exec(text)?.[1]
  if ((cause?.name === 'Unauthorized' || /is not authorized/.test(text)) && claimed !== undefined && DELEGATED.has(claimed)) {
    if (/has expired/.test(text)) return { name: 'DelegationExpired', message: short, at }
    return { name: 'DelegationMissingCapability', message: `the delegation does not grant ${claimed} on the space: ${short}`, at }
  }
  if (
    e?.name === 'TypeError' ||
    e?.name === 'HTTPError' ||
    e?.name === 'AbortError' ||
    /fetch failed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|socket|HTTP Request failed|receipt missing|failed to fetch receipt/i.test(text)
  ) {
    return { name: 'StorachaUnavailable', message: short, at }
  }
  return { name: 'UploadFailed', message: short, at }
}
