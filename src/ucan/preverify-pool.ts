/**
 * A pool of worker threads running preverify.ts, so the signature checks of RPC requests use the
 * machine's other cores while the main thread stays the only writer of every log (issue 11 item 2).
 *
 * Failure never costs a check: a pool that is full, a worker that crashed or has not answered
 * within `timeoutMs` answers `undefined`, and the main thread verifies that request itself.
 * Bounded: at most `workers` threads (started on first use), at most `maxPending` requests handed
 * to them at once (the fair scheduler already bounds requests being worked on; this is a backstop),
 * each worker's set of verified CIDs at most `maxKnown` entries, its heap at most
 * {@link WORKER_HEAP_LIMITS}.
 */
import type { Preverified } from './preverify.js'
import { type WorkerHeap, createWorkerPool, workerScript } from './worker-pool.js'

/** Options of {@link createPreverifyPool}. */
export interface PreverifyPoolOptions {
  /** Worker threads; integer ≥ 1. */
  workers: number
  /** Most invocations a request is looked at for (the transport's own bound); integer ≥ 1. */
  maxInvocations: number
  /** Most requests handed to the workers at once; past it a request is verified on the main thread. Default 256. */
  maxPending?: number
  /** CIDs each worker remembers as verified; default 10,000 (~100 B each). */
  maxKnown?: number
  /** Longest wait for a worker's answer before the main thread verifies itself, ms; default 10,000. */
  timeoutMs?: number
  /** Told once per worker that fails (an error event or an exit while in use). */
  onError?: (err: unknown) => void
  /** Bytes of each worker's proof-block cache (proof-blocks.ts); default its own. */
  proofBlockCacheBytes?: number
}

/** See the module comment. */
export interface PreverifyPool {
  /** The request's pre-verified UCANs, or `undefined` when the main thread must verify them all itself. Never rejects. */
  run(body: Uint8Array, contentType: string): Promise<Preverified | undefined>
  /** The running workers' V8 heaps, summed (worker-pool.ts `WorkerPool.heap`). Never rejects. */
  heap(): Promise<WorkerHeap>
  /** Stops every worker; later `run`s answer `undefined`. */
  close(): Promise<void>
}

/** V8 heap limits of each worker, MiB: young generation (scavenged often, its live set is one request's) and old. */
export const WORKER_HEAP_LIMITS = { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 64 } as const

/**
 * Creates the pool (no thread starts until the first `run`).
 * @throws RangeError unless `workers` and `maxInvocations` are positive integers.
 */
export function createPreverifyPool(options: PreverifyPoolOptions): PreverifyPool {
  const { workers, maxInvocations } = options
  if (!Number.isSafeInteger(workers) || workers < 1) throw new RangeError('workers must be a positive integer')
  if (!Number.isSafeInteger(maxInvocations) || maxInvocations < 1) throw new RangeError('maxInvocations must be a positive integer')
  const maxPending = options.maxPending ?? 256
  const maxKnown = options.maxKnown ?? 10_000
  // Its live data is a request at a time and the set of known CIDs: small heaps keep the
  // thread's memory bounded (a worker past them is ended, and the main thread takes over).
  const pool = createWorkerPool({
    script: () => workerScript('preverify-worker.js'),
    workers,
    workerData: { maxInvocations, maxKnown, proofBlockCacheBytes: options.proofBlockCacheBytes },
    resourceLimits: WORKER_HEAP_LIMITS,
    timeoutMs: options.timeoutMs ?? 10_000,
    onError: options.onError,
    name: 'pre-verification worker',
  })
  return {
    async run(body, contentType) {
      if (pool.load() >= maxPending) return undefined
      // An exact copy, moved: posting `body` itself would clone the whole buffer it views
      // (HTTP bodies are often slices of a larger pooled one).
      const copy = new Uint8Array(body)
      const r = await pool.post<{ preverified: Preverified }>({ body: copy, contentType }, [copy.buffer])
      return r === 'busy' || r === undefined ? undefined : r.preverified
    },
    heap: () => pool.heap(),
    close: () => pool.close(),
  }
}
