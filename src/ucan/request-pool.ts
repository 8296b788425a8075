/**
 * A pool of request worker threads (request-worker.ts, issue 11 item 2): the CPU-heavy half of
 * each RPC request (decode, every UCAN check but revocation, receipts and the response CAR) runs
 * on the machine's other cores while the main thread keeps HTTP, the shared state and the one
 * writer of every log (request-sequencer.ts).
 *
 * Back-pressure: each worker takes at most `maxQueue` requests to check at once; when every
 * worker's queue is full a request is refused `busy` (the transport answers 503 `ServiceBusy` with
 * `Retry-After`) rather than queued without bound. Failure never costs a check: a worker that
 * crashed or has not answered within `timeoutMs` answers `undefined`, and the main thread runs
 * that request itself. Bounded: at most `workers` threads (started on first use), each with its
 * heap limited as {@link REQUEST_WORKER_HEAP_LIMITS} and its caches by the service's knobs.
 */
import type { API } from '@ucanto/core'
import type { AppendOutcome, AppendVerdict } from './request-check.js'
import { type WorkerHeap, createWorkerPool, workerScript } from './worker-pool.js'

/** What every worker is started with: the service's settings (request-check.ts `RequestCheckContext`). */
export interface RequestWorkerSettings {
  /** The service key, ucanto's Ed25519 signer encoding (`signer.encode()`: 0x1300 tag, seed, 0xed tag, public key). */
  signer: Uint8Array
  /** Longest invocation lifetime accepted, seconds. */
  maxInvocationLifetime: number
  /** DIDs refused as a space besides the service's own. */
  reservedSpaces: string[]
  /** Most invocations per request. */
  maxInvocations: number
  /** Entries of each worker's verified-UCAN cache (verified-ucans.ts). */
  maxVerifiedUcans: number
  /** Bytes of each worker's verified-UCAN cache. */
  maxVerifiedUcanBytes: number
  /** Bytes of each worker's proof-block cache (proof-blocks.ts); default its own. */
  proofBlockCacheBytes?: number
}

/** Options of {@link createRequestPool}. */
export interface RequestPoolOptions {
  /** Worker threads; integer ≥ 1. */
  workers: number
  /** Requests each worker is checking at most (its queue); past it on every worker a request is refused `busy`. Integer ≥ 1. */
  maxQueue: number
  settings: RequestWorkerSettings
  /** Longest wait for a worker's answer before the main thread does that work itself, ms; default 10,000. */
  timeoutMs?: number
  /** Told once per worker that fails (an error event or an exit while in use). */
  onError?: (err: unknown) => void
}

/** See the module comment. */
export interface RequestPool {
  /**
   * The request's verdicts (request-check.ts `checkRequest`), `'fallback'` (the main thread runs
   * the request itself), `'busy'` (every worker's queue is full: refuse with 503), or `undefined`
   * (no worker answered: run it on the main thread). Never rejects.
   */
  check(body: Uint8Array, contentType: string, now: number): Promise<AppendVerdict[] | 'fallback' | 'busy' | undefined>
  /** The response of `outcomes` (request-check.ts `encodeResponse`), or `undefined` (encode it on the main thread). Never rejects. */
  encode(outcomes: AppendOutcome[], headers: Record<string, string>): Promise<API.HTTPResponse | undefined>
  /** The running workers' V8 heaps, summed (worker-pool.ts `WorkerPool.heap`). Never rejects. */
  heap(): Promise<WorkerHeap>
  /** Stops every worker; later calls answer `undefined`. */
  close(): Promise<void>
}

/** V8 heap limits of each worker, MiB: young generation (a few requests live at once) and old (its caches). */
export const REQUEST_WORKER_HEAP_LIMITS = { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 64 } as const

/**
 * Creates the pool (no thread starts until the first request).
 * @throws RangeError unless `workers` and `maxQueue` are positive integers.
 */
export function createRequestPool(options: RequestPoolOptions): RequestPool {
  const { maxQueue } = options
  if (!Number.isSafeInteger(maxQueue) || maxQueue < 1) throw new RangeError('maxQueue must be a positive integer')
  const pool = createWorkerPool({
    script: () => workerScript('request-worker.js'),
    workers: options.workers,
    workerData: options.settings,
    resourceLimits: REQUEST_WORKER_HEAP_LIMITS,
    timeoutMs: options.timeoutMs ?? 10_000,
    onError: options.onError,
    name: 'request worker',
  })
  return {
    async check(body, contentType, now) {
      // An exact copy, moved: posting `body` itself would clone the whole buffer it views
      // (HTTP bodies are often slices of a larger pooled one).
      const copy = new Uint8Array(body)
      const r = await pool.post<{ verdicts: AppendVerdict[] | 'fallback' }>({ kind: 'check', body: copy, contentType, now }, [copy.buffer], { maxLoad: maxQueue })
      return r === 'busy' || r === undefined ? r : r.verdicts
    },
    async encode(outcomes, headers) {
      // Not counted: the request was admitted when checked, and what ran must be answered.
      const r = await pool.post<{ response: API.HTTPResponse | undefined }>({ kind: 'encode', outcomes, headers }, [], { counted: false })
      return r === 'busy' || r === undefined ? undefined : r.response
    },
    heap: () => pool.heap(),
    close: () => pool.close(),
  }
}
