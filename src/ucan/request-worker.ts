/**
 * A request worker thread (request-pool.ts; issue 11 item 2): answers the main thread's
 * `check` jobs (request-check.ts `checkRequest`: decode a request and check its appends) and
 * `encode` jobs (`encodeResponse`: sign the receipts, encode the response CAR). It holds no
 * shared state: its only memory between jobs is its bounded caches of verified UCANs and parsed
 * keys (the service's knobs, per thread), and it trusts nothing it is sent.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { ed25519 } from '@ucanto/principal'
import { createGrantCache } from './grants.js'
import { HEAP_JOB, heapOfThisThread } from './worker-pool.js'
import { createFastSigner, createPrincipalParser } from './principal.js'
import { setProofBlockCacheBytes } from './proof-blocks.js'
import type { RequestWorkerSettings } from './request-pool.js'
import { type AppendOutcome, type AppendVerdict, FALLBACK, checkRequest, encodeResponse } from './request-check.js'

/** A job from the pool. */
type Job =
  | { kind: 'check'; id: number; body: Uint8Array; contentType: string; now: number }
  | { kind: 'encode'; id: number; outcomes: AppendOutcome[]; headers: Record<string, string> }
  | { kind: typeof HEAP_JOB; id: number }

const settings = workerData as RequestWorkerSettings
if (settings.proofBlockCacheBytes !== undefined) setProofBlockCacheBytes(settings.proofBlockCacheBytes)
const service = createFastSigner(ed25519.decode(settings.signer))
const ctx = {
  authorize: {
    service,
    principal: createPrincipalParser(),
    maxInvocationLifetime: settings.maxInvocationLifetime,
    grants: createGrantCache({ maxUcans: settings.maxVerifiedUcans, maxUcanBytes: settings.maxVerifiedUcanBytes }),
    reservedSpaces: new Set(settings.reservedSpaces),
  },
  maxInvocations: settings.maxInvocations,
}

parentPort?.on('message', (job: Job) => {
  if (job.kind === HEAP_JOB) {
    parentPort?.postMessage({ id: job.id, heap: heapOfThisThread() })
    return
  }
  if (job.kind === 'check') {
    void checkRequest(job.body, job.contentType, job.now, ctx).then((verdicts) => {
      // Entries are moved, not copied (each has its own buffer).
      const transfer = verdicts === FALLBACK ? [] : verdicts.flatMap((v: AppendVerdict) => (v.result.ok ? [v.result.ok.entry.buffer] : []))
      parentPort?.postMessage({ id: job.id, verdicts }, transfer as ArrayBuffer[])
    })
    return
  }
  encodeResponse(job.outcomes, job.headers, service).then(
    (response) => {
      // Moved, not copied, when the body is its buffer's only view (the direct encoder's CAR is).
      const whole = response.body.byteOffset === 0 && response.body.byteLength === response.body.buffer.byteLength
      const body = whole ? response.body : new Uint8Array(response.body)
      parentPort?.postMessage({ id: job.id, response: { ...response, body } }, [body.buffer as ArrayBuffer])
    },
    () => parentPort?.postMessage({ id: job.id, response: undefined }),
  )
})
