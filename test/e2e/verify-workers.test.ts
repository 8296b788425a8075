/**
 * Issue 11 item 2, both cores: `ucanlog serve --verify-workers 1` checks requests' UCAN signatures
 * on a worker thread (src/ucan/preverify-pool.ts, the compiled worker under dist/). Through the
 * real server over HTTP: a request of 16 appends is answered exactly as without workers (every
 * entry appended, at its index, cosigned), and in a request mixing forged and honest invocations
 * the forged ones are still refused by name while the rest append. (With request workers, the
 * default, such requests are checked there instead: request-workers.test.ts; off here.)
 */
import { describe, expect, it } from 'vitest'
import type * as API from '@ucanto/interface'
import { appendInvocation, delegateAgentToService, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { impostor, postInvocations, servicePerTest, type startTestService } from './helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>
const text = (s: string) => new TextEncoder().encode(s)
const start = servicePerTest()

/** Posts one request of `invocations`; each one's outcome, in order. */
async function post(s: Svc, invocations: API.Invocation[]) {
  const res = await postInvocations(s.url, invocations)
  expect(res.status, new TextDecoder().decode(res.body)).toBe(200)
  return res.outs
}

describe('--verify-workers: signature checks on a worker thread', () => {
  for (const workers of [1, 0]) {
    it(`with ${workers} worker(s): 16 appends in one request all land, in order, cosigned; forged ones are refused by name`, async () => {
      const s = await start({ verifyWorkers: workers, requestWorkers: 0 })
      const [space, agent, mallory] = [await generateKey(), await generateKey(), await generateKey()]
      const s2a = await delegateSpaceToAgent({ space, agent })
      const a2s = await delegateAgentToService({ agent, service: s.did as API.DID, proofs: [s2a] })
      const honest = (i: number) => appendInvocation({ agent, service: s.did as API.DID, space: space.did(), entry: text(`entry ${i}`), agentToService: a2s })
      const invocations = await Promise.all(Array.from({ length: 16 }, async (_, i) => (await honest(i)).delegate()))
      const outs = await post(s, invocations)
      expect(outs.map((o) => o.error)).toEqual(invocations.map(() => undefined))
      expect(outs.map((o) => o.ok?.index).sort((a, b) => Number(a) - Number(b))).toEqual(invocations.map((_, i) => i))
      expect(outs.every((o) => o.ok?.published === true)).toBe(true)

      // Mallory signs with her own key but names the agent as issuer: canonical blocks, bad signatures.
      const forge = async (i: number) => {
        return (await appendInvocation({ agent: impostor(agent, mallory) as typeof agent, service: s.did as API.DID, space: space.did(), entry: text(`forged ${i}`), agentToService: a2s })).delegate()
      }
      const mixed = [await forge(0), ...(await Promise.all([16, 17, 18, 19].map(async (i) => (await honest(i)).delegate()))), await forge(1)]
      const mixedOuts = await post(s, mixed)
      expect(mixedOuts[0]?.error?.name).toBe('InvalidSignature')
      expect(mixedOuts[5]?.error?.name).toBe('InvalidSignature')
      expect(mixedOuts.slice(1, 5).map((o) => o.error)).toEqual([undefined, undefined, undefined, undefined])
      const head = (await (await fetch(`${s.url}/logs/${space.did()}/head`)).json()) as { integratedSize: number }
      expect(head.integratedSize).toBe(20)
      // Both requests were checked by the worker when there is one, and never handed over otherwise.
      const metrics = await (await fetch(`${s.url}/metrics`)).text()
      const count = (by: string) => Number(metrics.match(new RegExp(`^ucanlog_preverify_requests_total\\{by="${by}"\\} (\\d+)$`, 'm'))?.[1] ?? 0)
      expect(count('worker')).toBe(workers > 0 ? 2 : 0)
      expect(count('main-thread')).toBe(0)
    })
  }
})
