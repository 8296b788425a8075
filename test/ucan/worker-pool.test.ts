/**
 * The thread machinery both pools share (src/ucan/worker-pool.ts): each job goes to the worker
 * with the fewest jobs in flight, counted or not. A burst of uncounted jobs (the receipts of a
 * batch's requests, request-pool.ts `encode`) is spread over the workers like counted ones, not
 * left to the first worker while the others wait.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { type WorkerPool, createWorkerPool } from '../../src/ucan/worker-pool.js'

let dir: string
let script: URL
const pools: WorkerPool[] = []

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'worker-pool-'))
  // Answers each job with the thread that ran it, after `ms` of waiting (so jobs overlap).
  writeFileSync(
    join(dir, 'echo-thread.mjs'),
    "import { parentPort, threadId } from 'node:worker_threads'\n" +
      'parentPort.on(\'message\', (m) => setTimeout(() => parentPort.postMessage({ id: m.id, thread: threadId }), m.ms ?? 20))\n',
  )
  script = pathToFileURL(join(dir, 'echo-thread.mjs'))
})
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()))
  rmSync(dir, { recursive: true, force: true })
})

function pool(workers: number): WorkerPool {
  const p = createWorkerPool({ script: () => script, workers, workerData: undefined, resourceLimits: {}, timeoutMs: 10_000, name: 'echo' })
  pools.push(p)
  return p
}

/** How many of `answers` each thread ran, by thread id. */
function perThread(answers: unknown[]): number[] {
  const n = new Map<number, number>()
  for (const a of answers) {
    const t = (a as { thread: number }).thread
    n.set(t, (n.get(t) ?? 0) + 1)
  }
  return [...n.values()].sort()
}

describe('the worker pool spreads jobs over its workers', () => {
  test('a burst of uncounted jobs is split evenly, as a burst of counted ones is', async () => {
    const p = pool(2)
    expect(perThread(await Promise.all(Array.from({ length: 8 }, () => p.post({ ms: 20 }, [], { counted: false }))))).toEqual([4, 4])
    expect(perThread(await Promise.all(Array.from({ length: 8 }, () => p.post({ ms: 20 }, [], { counted: true }))))).toEqual([4, 4])
    expect(p.load()).toBe(0)
  })

  test('a counted job goes to the worker without an uncounted one in flight; load() counts only counted jobs', async () => {
    const p = pool(2)
    const slow = p.post<{ thread: number }>({ ms: 200 }, [], { counted: false })
    const counted = p.post<{ thread: number }>({ ms: 20 }, [], { counted: true })
    expect(p.load()).toBe(1)
    const [a, b] = await Promise.all([slow, counted])
    expect((a as { thread: number }).thread).not.toBe((b as { thread: number }).thread)
  })

  test('maxLoad refuses by counted jobs only: uncounted ones in flight do not make the pool busy', async () => {
    const p = pool(1)
    const uncounted = Array.from({ length: 3 }, () => p.post({ ms: 50 }, [], { counted: false }))
    const first = p.post({ ms: 50 }, [], { maxLoad: 1 })
    expect(await p.post({ ms: 0 }, [], { maxLoad: 1 })).toBe('busy')
    expect(await first).toMatchObject({ thread: expect.any(Number) })
    await Promise.all(uncounted)
  })

  test('maxLoad: a worker at the bound is passed over for one under it, even with more uncounted jobs in flight', async () => {
    const p = pool(2)
    // Both threads started and idle, then: thread X holds one counted job, thread Y three uncounted.
    await Promise.all([p.post({ ms: 0 }, [], { counted: false }), p.post({ ms: 0 }, [], { counted: false })])
    const counted = p.post<{ thread: number }>({ ms: 300 }, [], { counted: true })
    const uncounted = Array.from({ length: 3 }, () => p.post<{ thread: number }>({ ms: 300 }, [], { counted: false }))
    const next = await p.post<{ thread: number }>({ ms: 0 }, [], { maxLoad: 1 })
    expect(next).not.toBe('busy')
    const x = (await counted) as { thread: number }
    expect((next as { thread: number }).thread).not.toBe(x.thread)
    await Promise.all(uncounted)
  })
})
