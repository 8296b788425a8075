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
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { API } from '@ucanto/core'
import type { AppendOutcome, AppendVerdict } from './request-check.js'

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
  /** Stops every worker; later calls answer `undefined`. */
  close(): Promise<void>
}

/** Workers failing in a row (no answer between) before the pool gives up for good. */
const MAX_FAILURES = 3

/** V8 heap limits of each worker, MiB: young generation (a few requests live at once) and old (its caches). */
export const REQUEST_WORKER_HEAP_LIMITS = { maxYoungGenerationSizeMb: 16, maxOldGenerationSizeMb: 64 } as const

interface Slot {
  worker: Worker
  /** Check jobs in flight (what `maxQueue` bounds). */
  checking: number
  pending: Map<number, { resolve: (m: unknown) => void; timer: NodeJS.Timeout; check: boolean }>
}

/** The compiled request-worker.js beside this file; from TypeScript sources (tests), the one under dist/ (`npm run build`). */
function workerUrl(): URL {
  const here = new URL('./request-worker.js', import.meta.url)
  if (!import.meta.url.endsWith('.ts')) return here
  const built = new URL('../../dist/src/ucan/request-worker.js', import.meta.url)
  if (!existsSync(fileURLToPath(built))) throw new Error('the request worker is not built: run `npm run build`')
  return built
}

/**
 * Creates the pool (no thread starts until the first request).
 * @throws RangeError unless `workers` and `maxQueue` are positive integers.
 */
export function createRequestPool(options: RequestPoolOptions): RequestPool {
  const { workers, maxQueue } = options
  if (!Number.isSafeInteger(workers) || workers < 1) throw new RangeError('workers must be a positive integer')
  if (!Number.isSafeInteger(maxQueue) || maxQueue < 1) throw new RangeError('maxQueue must be a positive integer')
  const timeoutMs = options.timeoutMs ?? 10_000
  const slots: (Slot | undefined)[] = new Array(workers).fill(undefined)
  let nextId = 0
  let closed = false
  let failures = 0

  const settle = (slot: Slot, id: number, value: unknown): void => {
    const p = slot.pending.get(id)
    if (p === undefined) return
    slot.pending.delete(id)
    if (p.check) slot.checking--
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
    const worker = new Worker(workerUrl(), { workerData: options.settings, resourceLimits: REQUEST_WORKER_HEAP_LIMITS })
    worker.unref()
    const slot: Slot = { worker, checking: 0, pending: new Map() }
    worker.on('message', (m: { id: number; verdicts?: unknown; response?: unknown }) => {
      failures = 0
      settle(slot, m.id, 'verdicts' in m ? m.verdicts : m.response)
    })
    worker.on('error', (err) => fail(i, slot, err))
    worker.on('exit', (code) => fail(i, slot, new Error(`request worker exited with code ${code}`)))
    slots[i] = slot
    return slot
  }
  /** The slot with the fewest checks in flight (started if needed). */
  const pick = (): Slot => {
    let best = -1
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i]
      if (s === undefined) return start(i)
      if (best < 0 || s.checking < (slots[best] as Slot).checking) best = i
    }
    return slots[best] as Slot
  }
  const post = <T>(check: boolean, message: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<T | 'busy' | undefined> => {
    if (closed) return Promise.resolve(undefined)
    let slot: Slot
    try {
      slot = pick()
    } catch (err) {
      options.onError?.(err)
      closed = true
      return Promise.resolve(undefined)
    }
    if (check && slot.checking >= maxQueue) return Promise.resolve('busy')
    const id = nextId++
    if (check) slot.checking++
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(slot, id, undefined), timeoutMs)
      timer.unref()
      slot.pending.set(id, { resolve: resolve as (m: unknown) => void, timer, check })
      slot.worker.postMessage({ ...message, id }, transfer)
    })
  }

  return {
    check(body, contentType, now) {
      // An exact copy, moved: posting `body` itself would clone the whole buffer it views
      // (HTTP bodies are often slices of a larger pooled one).
      const copy = new Uint8Array(body)
      return post<AppendVerdict[] | 'fallback'>(true, { kind: 'check', body: copy, contentType, now }, [copy.buffer])
    },
    async encode(outcomes, headers) {
      const r = await post<API.HTTPResponse>(false, { kind: 'encode', outcomes, headers }, [])
      return r === 'busy' ? undefined : r
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
