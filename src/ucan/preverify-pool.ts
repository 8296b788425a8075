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
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { Preverified } from './preverify.js'

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
}

/** See the module comment. */
export interface PreverifyPool {
  /** The request's pre-verified UCANs, or `undefined` when the main thread must verify them all itself. Never rejects. */
  run(body: Uint8Array, contentType: string): Promise<Preverified | undefined>
  /** Stops every worker; later `run`s answer `undefined`. */
  close(): Promise<void>
}

/** Workers failing in a row (no answer between) before the pool gives up for good. */
const MAX_FAILURES = 3

/** V8 heap limits of each worker, MiB: young generation (scavenged often, its live set is one request's) and old. */
export const WORKER_HEAP_LIMITS = { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 64 } as const

interface Slot {
  worker: Worker
  pending: Map<number, { resolve: (p: Preverified | undefined) => void; timer: NodeJS.Timeout }>
}

/**
 * The worker script: the compiled preverify-worker.js beside this file; when this file runs from
 * TypeScript sources (the test runner), the compiled one under dist/ (`npm run build`).
 */
function workerUrl(): URL {
  const here = new URL('./preverify-worker.js', import.meta.url)
  if (!import.meta.url.endsWith('.ts')) return here
  const built = new URL('../../dist/src/ucan/preverify-worker.js', import.meta.url)
  if (!existsSync(fileURLToPath(built))) throw new Error('the pre-verification worker is not built: run `npm run build`')
  return built
}

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
  const timeoutMs = options.timeoutMs ?? 10_000
  const slots: (Slot | undefined)[] = new Array(workers).fill(undefined)
  let nextId = 0
  let pendingTotal = 0
  let closed = false
  /** Workers that failed since the last answer: past {@link MAX_FAILURES} the pool stops (the main thread verifies). */
  let failures = 0

  const settle = (slot: Slot, id: number, value: Preverified | undefined): void => {
    const p = slot.pending.get(id)
    if (p === undefined) return
    slot.pending.delete(id)
    pendingTotal--
    clearTimeout(p.timer)
    p.resolve(value)
  }
  const fail = (i: number, slot: Slot, err: unknown): void => {
    if (slots[i] !== slot) return
    slots[i] = undefined
    if (!closed) options.onError?.(err)
    if (++failures > MAX_FAILURES) closed = true
    for (const id of [...slot.pending.keys()]) settle(slot, id, undefined)
    void slot.worker.terminate()
  }
  const start = (i: number): Slot => {
    // Its live data is a request at a time and the set of known CIDs: small heaps keep the
    // thread's memory bounded (a worker past them is ended, and the main thread takes over).
    const worker = new Worker(workerUrl(), { workerData: { maxInvocations, maxKnown }, resourceLimits: WORKER_HEAP_LIMITS })
    worker.unref()
    const slot: Slot = { worker, pending: new Map() }
    worker.on('message', (m: { id: number; preverified: Preverified }) => {
      failures = 0
      settle(slot, m.id, m.preverified)
    })
    worker.on('error', (err) => fail(i, slot, err))
    worker.on('exit', (code) => fail(i, slot, new Error(`pre-verification worker exited with code ${code}`)))
    slots[i] = slot
    return slot
  }
  /** The slot with the fewest requests pending (started if needed). */
  const pick = (): Slot => {
    let best = -1
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i]
      if (s === undefined) return start(i)
      if (best < 0 || s.pending.size < (slots[best] as Slot).pending.size) best = i
    }
    return slots[best] as Slot
  }

  return {
    run(body, contentType) {
      if (closed || pendingTotal >= maxPending) return Promise.resolve(undefined)
      let slot: Slot
      try {
        slot = pick()
      } catch (err) {
        options.onError?.(err)
        closed = true
        return Promise.resolve(undefined)
      }
      const id = nextId++
      pendingTotal++
      return new Promise((resolve) => {
        const timer = setTimeout(() => settle(slot, id, undefined), timeoutMs)
        timer.unref()
        slot.pending.set(id, { resolve, timer })
        // An exact copy, moved: posting `body` itself would clone the whole buffer it views
        // (HTTP bodies are often slices of a larger pooled one).
        const copy = new Uint8Array(body)
        slot.worker.postMessage({ id, body: copy, contentType }, [copy.buffer])
      })
    },
    async close() {
      closed = true
      await Promise.all(
        slots.map((s, i) => {
          if (s === undefined) return undefined
          slots[i] = undefined
          for (const id of [...s.pending.keys()]) settle(s, id, undefined)
          return s.worker.terminate()
        }),
      )
    },
  }
}
