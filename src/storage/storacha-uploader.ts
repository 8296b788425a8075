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
 * Jobs come from a durable UploadQueue, oldest checkpoints first, a few of a log at once (each
 * upload is self-contained; the space's newest root needs every earlier CAR, which the queue
 * guarantees eventually). A failed attempt is retried
 * with exponential backoff (retryMinMs doubling to retryMaxMs); a new delegation for the log makes
 * its jobs due at once. Failures get a stable name, shown in the log's status and logged once per
 * attempt:
 *
 *   SpaceNotProvisioned          the space has no storage provider (Storacha `InsufficientStorage`)
 *   DelegationMissingCapability  the delegation does not grant a capability Storacha checked (`Unauthorized`)
 *   DelegationExpired            the delegation (or a proof in its chain) has expired
 *   NoDelegation                 the log has received no delegation yet (e.g. right after a restore)
 *   StorachaUnavailable          network error, HTTP error or timeout talking to Storacha
 *   CarMissing                   the CAR file is gone from the data directory
 *   UploadFailed                 anything else (the message says what Storacha answered)
 */
import { readFile } from 'node:fs/promises'
import * as Client from '@ucanto/client'
import { DID } from '@ucanto/core'
import type { API } from '@ucanto/core'
import * as CAR from '@ucanto/transport/car'
import * as HTTP from '@ucanto/transport/http'
import { uploadCAR } from '@storacha/upload-client'
import { STORACHA_ABILITIES } from './storacha-capabilities.js'
import { expiryOf, type UploadError, type UploadJob, type UploadQueue, type UploadStatus } from './upload-queue.js'

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
/** Default uploads of one log in flight at once (each its own checkpoint CAR). */
export const DEFAULT_UPLOAD_CONCURRENCY = 4
/** Default p-retry retries inside one upload-client call (receipt polling, PUT). */
export const DEFAULT_CLIENT_RETRIES = 3

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
  queue: UploadQueue
  /** The service signer: the issuer of every invocation (the audience of the customer's delegation). */
  signer: API.Signer
  target: StorachaTarget
  /** First retry delay, ms (default DEFAULT_UPLOAD_RETRY_MIN_MS). */
  retryMinMs?: number
  /** Longest retry delay, ms (default DEFAULT_UPLOAD_RETRY_MAX_MS). */
  retryMaxMs?: number
  /** Uploads of one log in flight at once (default DEFAULT_UPLOAD_CONCURRENCY). */
  concurrency?: number
  /** upload-client retries per call (default DEFAULT_CLIENT_RETRIES). */
  clientRetries?: number
  /** Clock, Unix ms (default Date.now). */
  now?: () => number
  /** Called after each upload attempt with `ok` or the failure's stable name (module comment), for the metrics. */
  onAttempt?: (result: string) => void
  /** pino-compatible logger. */
  logger?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void; error(o: object, msg?: string): void }
}

/** A checkpoint CAR was uploaded: the job and what Storacha recorded. */
export interface UploadedEvent {
  job: UploadJob
  /** The upload's root as Storacha registered it (equals job.root). */
  root: string
}

/**
 * Runs the upload queue; see the module comment. start() begins work, close() stops it (an upload
 * in flight finishes or fails first; its job stays pending if it did not finish).
 */
export class StorachaUploader {
  readonly target: StorachaTarget
  private readonly o: StorachaUploaderOptions
  private readonly now: () => number
  private readonly minMs: number
  private readonly maxMs: number
  private readonly connection: ReturnType<typeof Client.connect>
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private again = false
  private closed = false
  private readonly listeners = new Set<(e: UploadedEvent) => void>()

  constructor(o: StorachaUploaderOptions) {
    this.o = o
    this.target = o.target
    this.now = o.now ?? Date.now
    this.maxMs = o.retryMaxMs ?? DEFAULT_UPLOAD_RETRY_MAX_MS
    this.minMs = Math.min(o.retryMinMs ?? DEFAULT_UPLOAD_RETRY_MIN_MS, this.maxMs)
    if (!(this.minMs > 0)) throw new RangeError('retry delays must be positive')
    new URL(o.target.url)
    new URL(o.target.receiptsEndpoint)
    this.connection = Client.connect({
      id: DID.parse(o.target.did as `did:${string}:${string}`),
      codec: CAR.outbound,
      channel: HTTP.open({ url: new URL(o.target.url), method: 'POST' }),
    })
  }

  /** Starts working through due jobs. */
  start(): void {
    this.kick()
  }

  /**
   * Queues a packed checkpoint CAR for upload (idempotent) and wakes the worker.
   * @param pack what CarPacker.pack resolved (root and carCid are CIDs, file an absolute path).
   */
  enqueue(space: string, pack: { treeSize: number; root: { toString(): string }; carCid: { toString(): string }; file: string }): void {
    if (this.o.queue.enqueue({ space, treeSize: pack.treeSize, root: pack.root.toString(), carFile: pack.file, carCid: pack.carCid.toString() }, this.now())) this.kick()
  }

  /**
   * Records the Agent→Service delegation of an append to `space`; a different one than the kept
   * one replaces it and makes the log's pending uploads due at once.
   */
  async rememberDelegation(space: string, delegation: API.Delegation): Promise<void> {
    if (await this.o.queue.setDelegation(space, delegation)) {
      this.o.queue.wake(space, this.now())
      this.kick()
    }
  }

  /** The upload status of `space` (undefined when nothing was ever queued for it). */
  status(space: string): UploadStatus | undefined {
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
    this.running = this.work().finally(() => {
      this.running = undefined
      if (this.again) {
        this.again = false
        this.kick()
      } else this.schedule()
    })
  }

  private schedule(): void {
    if (this.closed) return
    const next = this.o.queue.nextDue()
    if (next === undefined) return
    this.timer = setTimeout(() => this.kick(), Math.max(0, next - this.now()))
    this.timer.unref()
  }

  private async work(): Promise<void> {
    for (;;) {
      if (this.closed) return
      const jobs = this.o.queue.due(this.now(), this.o.concurrency ?? DEFAULT_UPLOAD_CONCURRENCY)
      if (jobs.length === 0) return
      await Promise.all(jobs.map((j) => this.attempt(j)))
    }
  }

  private async attempt(job: UploadJob): Promise<void> {
    const log = this.o.logger
    try {
      const root = await this.upload(job)
      this.o.queue.markDone(job.space, job.treeSize, this.now())
      this.o.onAttempt?.('ok')
      log?.info({ log: job.space, treeSize: job.treeSize, root, car: job.carCid }, 'checkpoint CAR stored in the space')
      for (const f of this.listeners) f({ job, root })
    } catch (err) {
      const e = classifyUploadError(err, this.now())
      const blocked = e.name !== 'StorachaUnavailable' && e.name !== 'UploadFailed'
      const delay = blocked ? this.maxMs : Math.min(this.maxMs, this.minMs * 2 ** Math.min(job.attempts, 30))
      this.o.queue.markFailed(job.space, job.treeSize, e, this.now() + delay)
      this.o.onAttempt?.(e.name)
      const line = { log: job.space, treeSize: job.treeSize, error: e.name, message: e.message, attempt: job.attempts + 1, retryInMs: delay }
      if (blocked) log?.error(line, `cannot store the log in its space: ${e.name}`)
      else log?.warn(line, 'checkpoint upload failed; will retry')
    }
  }

  private async upload(job: UploadJob): Promise<string> {
    const delegation = await this.o.queue.delegation(job.space)
    if (!delegation) throw new Failure('NoDelegation', 'no Agent→Service delegation received for this log yet; the next append brings one')
    const exp = expiryOf(delegation)
    if (exp * 1000 <= this.now()) {
      throw new Failure('DelegationExpired', `the Agent→Service delegation ${delegation.cid} (or a proof in it) expired at ${new Date(exp * 1000).toISOString()}; append with a fresh delegation`)
    }
    let bytes: Uint8Array
    try {
      bytes = new Uint8Array(await readFile(job.carFile))
    } catch (err) {
      throw new Failure('CarMissing', `cannot read ${job.carFile}: ${(err as Error).message}`)
    }
    const conf = {
      issuer: this.o.signer,
      with: job.space as API.DIDKey,
      proofs: [delegation],
      audience: this.connection.id,
    }
    const root = await uploadCAR(conf as never, new Blob([bytes]), {
      connection: this.connection as never,
      receiptsEndpoint: this.target.receiptsEndpoint,
      retries: this.o.clientRetries ?? DEFAULT_CLIENT_RETRIES,
      pieceHasher: null as never,
    })
    if (root.toString() !== job.root) throw new Failure('UploadFailed', `Storacha registered root ${root}, expected ${job.root}`)
    return root.toString()
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
