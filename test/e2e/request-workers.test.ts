/**
 * Issue 11 item 2, both cores: `ucanlog serve --request-workers 1` decodes and checks whole append
 * requests on a worker thread and signs their receipts there (src/ucan/request-check.ts, the
 * compiled worker under dist/), the main thread only sequencing them (request-sequencer.ts).
 * Through the real server over HTTP, with and without the worker, the same outcomes: 16 appends in
 * one request land in order and cosigned; forged ones are refused by name beside honest ones; a
 * replayed request gets its first outcomes and appends nothing; a revoked delegation is `Revoked`;
 * a request that is not only appends (a read) runs on the main thread; a rate-limited issuer gets 429.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_TILE_CACHE_BYTES, DEFAULT_UPPER_TILE_CACHE_BYTES } from '../../src/log/tile-cache.js'
import { DEFAULT_SHARD_CACHE_BYTES } from '../../src/storage/unixfs.js'
import type * as API from '@ucanto/interface'
import { appendInvocation, delegateAgentToService, delegateSpaceToAgent, generateKey, readInvocation, revokeInvocation } from '../../src/ucan/index.js'
import { impostor, postInvocations, servicePerTest, type startTestService } from './helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>
const text = (s: string) => new TextEncoder().encode(s)
const start = servicePerTest()

/** Posts one request of `invocations`: its status, `Retry-After` and each invocation's outcome, in order. */
async function post(s: Svc, invocations: API.Invocation[]) {
  const res = await postInvocations(s.url, invocations)
  return { status: res.status, outs: res.outs, retryAfter: res.headers['retry-after'] }
}

/** The service's `ucanlog_request_workers_total` count for `by`. */
async function routed(s: Svc, by: string): Promise<number> {
  const metrics = await (await fetch(`${s.url}/metrics`)).text()
  return Number(metrics.match(new RegExp(`^ucanlog_request_workers_total\\{by="${by}"\\} (\\d+)$`, 'm'))?.[1] ?? 0)
}

describe('--request-workers: whole append requests on a worker thread', () => {
  for (const workers of [1, 0]) {
    it(`with ${workers} worker(s): appends land cosigned, forgeries, replays and revocations answered as in process`, async () => {
      const s = await start({ requestWorkers: workers })
      const [space, agent, mallory] = [await generateKey(), await generateKey(), await generateKey()]
      const s2a = await delegateSpaceToAgent({ space, agent })
      const a2s = await delegateAgentToService({ agent, service: s.did as API.DID, proofs: [s2a] })
      const honest = async (i: number, delegation = a2s) =>
        (await appendInvocation({ agent, service: s.did as API.DID, space: space.did(), entry: text(`entry ${i}`), agentToService: delegation })).delegate()
      const invocations = await Promise.all(Array.from({ length: 16 }, (_, i) => honest(i)))
      const first = await post(s, invocations)
      expect(first.status).toBe(200)
      expect(first.outs.map((o) => o.error)).toEqual(invocations.map(() => undefined))
      expect(first.outs.map((o) => o.ok?.index).sort((a, b) => Number(a) - Number(b))).toEqual(invocations.map((_, i) => i))
      expect(first.outs.every((o) => o.ok?.published === true && o.ok?.logId === space.did())).toBe(true)

      // Mallory signs with her own key but names the agent as issuer: canonical blocks, bad signatures.
      const forge = async (i: number) =>
        (await appendInvocation({ agent: impostor(agent, mallory) as typeof agent, service: s.did as API.DID, space: space.did(), entry: text(`forged ${i}`), agentToService: a2s })).delegate()
      const mixed = [await forge(0), ...(await Promise.all([16, 17, 18, 19].map((i) => honest(i)))), await forge(1)]
      const mixedOuts = (await post(s, mixed)).outs
      expect(mixedOuts[0]?.error?.name).toBe('InvalidSignature')
      expect(mixedOuts[5]?.error?.name).toBe('InvalidSignature')
      expect(mixedOuts.slice(1, 5).map((o) => o.error)).toEqual([undefined, undefined, undefined, undefined])

      // The same request again: every first outcome (same index), nothing appended twice.
      const again = (await post(s, mixed)).outs
      expect(again.map((o) => o.ok?.index ?? o.error?.name)).toEqual(mixedOuts.map((o) => o.ok?.index ?? o.error?.name))
      const head = async () => ((await (await fetch(`${s.url}/logs/${space.did()}/head`)).json()) as { integratedSize: number }).integratedSize
      expect(await head()).toBe(20)

      // A read (not an append) runs on the main thread, with the same answer.
      const read = await readInvocation({ issuer: agent, service: s.did as API.DID, space: space.did(), offset: 0, limit: 2 }).delegate()
      const readOut = (await post(s, [read])).outs[0]
      expect(readOut?.error).toBeUndefined()

      // The agent revokes its Agent→Service delegation: a new append under it is Revoked.
      const revoke = await revokeInvocation({ issuer: agent, service: s.did as API.DID, ucan: a2s }).delegate()
      expect((await post(s, [revoke])).outs[0]?.error).toBeUndefined()
      const late = (await post(s, [await honest(20), await honest(21)])).outs
      expect(late.map((o) => o.error?.name)).toEqual(['Revoked', 'Revoked'])
      expect(await head()).toBe(20)

      expect(await routed(s, 'worker')).toBe(workers > 0 ? 4 : 0)
      expect(await routed(s, 'fallback')).toBe(workers > 0 ? 2 : 0)
      expect(await routed(s, 'main-thread')).toBe(0)

      // /metrics shows the running worker's heap (its own gauge: nodejs_heap_* is the main thread's).
      const workerHeap = (await (await fetch(`${s.url}/metrics`)).text()).match(/^ucanlog_worker_heap_bytes\{pool="request",kind="(used|total)"\} (\d+)$/gm) ?? []
      expect(workerHeap.length).toBe(workers > 0 ? 2 : 0)
      for (const line of workerHeap) expect(Number(line.split(' ')[1])).toBeGreaterThan(1 << 20)
      // ...and what each of the engine's byte-bounded caches holds, within its knob (the defaults here).
      const metrics = await (await fetch(`${s.url}/metrics`)).text()
      const cache = (name: string) => Number(metrics.match(new RegExp(`^ucanlog_cache_bytes\\{cache="${name}"\\} (\\d+)$`, 'm'))?.[1] ?? NaN)
      expect(cache('tile')).toBeGreaterThan(0) // the log's level-0 tile, read for every inclusion proof
      expect(cache('tile')).toBeLessThanOrEqual(DEFAULT_TILE_CACHE_BYTES)
      expect(cache('upper_tile')).toBeLessThanOrEqual(DEFAULT_UPPER_TILE_CACHE_BYTES)
      expect(cache('shard')).toBeGreaterThanOrEqual(0)
      expect(cache('shard')).toBeLessThanOrEqual(DEFAULT_SHARD_CACHE_BYTES)
    })

    it(`with ${workers} worker(s): an issuer out of tokens gets 429 with Retry-After, nothing appended`, async () => {
      const s = await start({ requestWorkers: workers, agentRate: 1, agentBurst: 2 })
      const [space, agent] = [await generateKey(), await generateKey()]
      const s2a = await delegateSpaceToAgent({ space, agent })
      const a2s = await delegateAgentToService({ agent, service: s.did as API.DID, proofs: [s2a] })
      const inv = async (i: number) =>
        (await appendInvocation({ agent, service: s.did as API.DID, space: space.did(), entry: text(`entry ${i}`), agentToService: a2s })).delegate()
      const first = await post(s, [await inv(0), await inv(1), await inv(2)])
      expect(first.outs.map((o) => o.error?.name)).toEqual([undefined, undefined, 'RateLimited'])
      const refused = await post(s, [await inv(3), await inv(4)])
      expect(refused.status).toBe(429)
      expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1)
      const head = (await (await fetch(`${s.url}/logs/${space.did()}/head`)).json()) as { integratedSize: number }
      expect(head.integratedSize).toBe(2)
    })
  }
})
