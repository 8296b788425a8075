/**
 * The thread machinery both worker pools share (preverify-pool.ts, request-pool.ts): up to
 * `workers` threads of one script, started on first use, each job posted to the one with the
 * fewest jobs in flight and answered by a `{ id, ... }` message. Failure never loses a job
 * silently: a worker that errors or exits settles its jobs `undefined` (the caller then does the
 * work on the main thread) and is replaced on next use; past {@link MAX_FAILURES} failures in a
 * row the pool closes for good.
 * A job not answered within `timeoutMs` settles `undefined` too.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { getHeapStatistics } from 'node:v8'
import { Worker, type ResourceLimits } from 'node:worker_threads'

/** Workers failing in a row (no answer between) before the pool gives up for good. */
export const MAX_FAILURES = 3

/** Options of {@link createWorkerPool}. */
export interface WorkerPoolOptions {
  /** The worker script (see {@link workerScript}). */
  script: () => URL
  /** Worker threads; integer ≥ 1. */
  workers: number
  /** What each worker is started with (`workerData`). */
  workerData: unknown
  /** V8 heap limits of each worker. */
  resourceLimits: ResourceLimits
  /** Longest wait for an answer, ms. */
  timeoutMs: number
  /** Told once per worker that fails (an error event or an exit while in use), and if the script cannot start. */
  onError?: ((err: unknown) => void) | undefined
  /** Names the worker in the error of its exit. */
  name: string
}

/** See the module comment. */
export interface WorkerPool {
  /**
   * Posts `message` (plus `id`) to the worker with the fewest jobs in flight (counted or not) and
   * resolves to its answer (the whole `{ id, ... }` message), `undefined` when the pool is closed,
   * the worker failed or was late, or `'busy'` when `o.maxLoad` is given and every worker has that
   * many counted jobs (otherwise the job goes to the one with the fewest jobs among those under
   * it). `o.counted` (default true) counts the job in its worker's load. Never rejects.
   */
  post<T>(message: Record<string, unknown>, transfer: ArrayBuffer[], o?: { counted?: boolean; maxLoad?: number }): Promise<T | 'busy' | undefined>
  /** Counted jobs in flight on all workers. */
  load(): number
  /**
   * The V8 heaps of the workers running now, summed, bytes (each thread's
   * `v8.getHeapStatistics()`: `used_heap_size`, `total_heap_size`), and how many answered. Only
   * threads already started are asked (none is started for it); one that does not answer within
   * `timeoutMs` is left out. Never rejects. What /metrics shows of the threads' memory, which the
   * process's own heap gauges do not include.
   */
  heap(): Promise<WorkerHeap>
  /** Stops every worker, settling their jobs `undefined`; later posts answer `undefined`. */
  close(): Promise<void>
}

/** See {@link WorkerPool.heap}. */
export interface WorkerHeap {
  /** Bytes of live and not yet collected objects, over the workers that answered. */
  used: number
  /** Bytes V8 reserved for the heaps, over the workers that answered. */
  total: number
  /** Workers that answered. */
  workers: number
}

/** The `kind` of the message every worker script answers with {@link heapOfThisThread}. */
export const HEAP_JOB = 'heap'

/** This thread's heap figures, answered to a {@link HEAP_JOB} message. */
export function heapOfThisThread(): { used: number; total: number } {
  const h = getHeapStatistics()
  return { used: h.used_heap_size, total: h.total_heap_size }
}

interface Slot {
  worker: Worker
  counted: number
  pending: Map<number, { resolve: (m: unknown) => void; timer: NodeJS.Timeout; counted: boolean }>
}

/**
 * The compiled script `name` (e.g. 'request-worker.js') beside this file; when this file runs from
 * TypeScript sources (the test runner), the compiled one under dist/ (`npm run build`).
 * @throws Error when running from sources and dist/ was not built.
 */
export function workerScript(name: string): URL {
  const here = new URL(`./${name}`, import.meta.url)
  if (!import.meta.url.endsWith('.ts')) return here
  const built = new URL(`../../dist/src/ucan/${name}`, import.meta.url)
  if (!existsSync(fileURLToPath(built))) throw new Error(`the worker ${name} is not built: run \`npm run build\``)
  return built
}

/**
 * Creates the pool (no thread starts until the first post).
 * @throws RangeError unless `workers` is a positive integer.
 */
export function createWorkerPool(options: WorkerPoolOptions): WorkerPool {
  const { workers, timeoutMs } = options
  if (!Number.isSafeInteger(workers) || workers < 1) throw new RangeError('workers must be a positive integer')
  const slots: (Slot | undefined)[] = new Array(workers).fill(undefined)
  let nextId = 0
  let total = 0
  let closed = false
  let failures = 0

  const settle = (slot: Slot, id: number, value: unknown): void => {
    const p = slot.pending.get(id)
    if (p === undefined) return
    slot.pending.delete(id)
    if (p.counted) {
      slot.counted--
      total--
    }
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
    const worker = new Worker(options.script(), { workerData: options.workerData, resourceLimits: options.resourceLimits })
    worker.unref()
    const slot: Slot = { worker, counted: 0, pending: new Map() }
    worker.on('message', (m: { id: number }) => {
      failures = 0
      settle(slot, m.id, m)
    })
    worker.on('error', (err) => fail(i, slot, err))
    worker.on('exit', (code) => fail(i, slot, new Error(`${options.name} exited with code ${code}`)))
    slots[i] = slot
    return slot
  }
  /**
   * The slot with the fewest jobs in flight, counted or not, among those with fewer than
   * `maxLoad` counted jobs (started if needed), or undefined when every slot has that many: a
   * burst of uncounted jobs (a batch's receipts to encode) is spread like counted ones, instead of
   * all going to the first slot while the counted jobs are equal everywhere.
   */
  const pick = (maxLoad = Infinity): Slot | undefined => {
    let best: Slot | undefined
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i]
      if (s === undefined) return maxLoad > 0 ? start(i) : undefined
      if (s.counted >= maxLoad) continue
      if (best === undefined || s.pending.size < best.pending.size) best = s
    }
    return best
  }

  /** Posts `message` to `slot`, resolving to its answer or `undefined` (failed, late, closed). */
  const postTo = <T>(slot: Slot, message: Record<string, unknown>, transfer: ArrayBuffer[], counted: boolean): Promise<T | undefined> => {
    const id = nextId++
    if (counted) {
      slot.counted++
      total++
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(slot, id, undefined), timeoutMs)
      timer.unref()
      slot.pending.set(id, { resolve: resolve as (m: unknown) => void, timer, counted })
      slot.worker.postMessage({ ...message, id }, transfer)
    })
  }

  return {
    post<T>(message: Record<string, unknown>, transfer: ArrayBuffer[], o: { counted?: boolean; maxLoad?: number } = {}): Promise<T | 'busy' | undefined> {
      if (closed) return Promise.resolve(undefined)
      let slot: Slot | undefined
      try {
        slot = pick(o.maxLoad)
      } catch (err) {
        options.onError?.(err)
        closed = true
        return Promise.resolve(undefined)
      }
      if (slot === undefined) return Promise.resolve('busy')
      return postTo<T>(slot, message, transfer, o.counted ?? true)
    },
    async heap() {
      const running = closed ? [] : slots.filter((s): s is Slot => s !== undefined)
      const answers = await Promise.all(running.map((s) => postTo<{ heap: { used: number; total: number } }>(s, { kind: HEAP_JOB }, [], false)))
      const sum: WorkerHeap = { used: 0, total: 0, workers: 0 }
      for (const a of answers) {
        if (a === undefined) continue
        sum.used += a.heap.used
        sum.total += a.heap.total
        sum.workers++
      }
      return sum
    },
    load: () => total,
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
