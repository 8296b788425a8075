/**
 * The worker thread of the pre-verification pool (preverify-pool.ts): answers each
 * `{ id, body, contentType }` message with `{ id, preverified }` (preverify.ts). It holds no state
 * but a bounded set of CIDs it verified (so an agent's Space→Agent proof is verified once per
 * thread, not once per request) and trusts nothing it is sent.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { type Preverified, preverifyRequest } from './preverify.js'
import { createPrincipalParser } from './principal.js'
import { setProofBlockCacheBytes } from './proof-blocks.js'
import { HEAP_JOB, heapOfThisThread } from './worker-pool.js'

/** What the pool sends: the request's bytes and its `content-type`, or a heap question. */
type Job = { kind?: undefined; id: number; body: Uint8Array; contentType: string } | { kind: typeof HEAP_JOB; id: number }

const { maxInvocations, maxKnown, proofBlockCacheBytes } = workerData as { maxInvocations: number; maxKnown: number; proofBlockCacheBytes?: number }
if (proofBlockCacheBytes !== undefined) setProofBlockCacheBytes(proofBlockCacheBytes)
/** CIDs verified here, least recently added dropped first past `maxKnown`. */
const known = new Set<string>()
const principal = createPrincipalParser()
const remember = {
  has: (cid: string) => known.has(cid),
  add(cid: string) {
    known.add(cid)
    if (known.size > maxKnown) known.delete(known.values().next().value as string)
  },
}

parentPort?.on('message', (job: Job) => {
  if (job.kind === HEAP_JOB) {
    parentPort?.postMessage({ id: job.id, heap: heapOfThisThread() })
    return
  }
  void preverifyRequest(job.body, job.contentType, { maxInvocations, known: remember, principal }).then((preverified: Preverified) =>
    parentPort?.postMessage({ id: job.id, preverified }),
  )
})
