/**
 * Issue 11 item 2, back-pressure: the service-wide queue of waiting turns is bounded
 * (`--max-queued-requests`). A flood from one client address fills it and gets 503 ServiceBusy with
 * `Retry-After` (nothing ran for those), while another address's appends all succeed: reaching the
 * bound refuses the party that caused it. Over real HTTP from distinct loopback source addresses;
 * no timing assertion (only what was answered, and what was appended).
 */
import { describe, expect, it } from 'vitest'
import type * as API from '@ucanto/interface'
import * as CAR from '@ucanto/transport/car'
import { appendInvocation, delegateAgentToService, delegateSpaceToAgent, generateKey, type Key } from '../../src/ucan/index.js'
import { encodeRequest, outOf } from '../ucan/helpers.js'
import { postFrom, servicePerTest, type startTestService } from './helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>
const text = (s: string) => new TextEncoder().encode(s)

const start = servicePerTest()

async function agentOf(s: Svc): Promise<{ space: Key; append: (entry: string) => Promise<API.Invocation> }> {
  const [space, agent] = [await generateKey(), await generateKey()]
  const s2a = await delegateSpaceToAgent({ space, agent })
  const a2s = await delegateAgentToService({ agent, service: s.did as API.DID, proofs: [s2a] })
  return {
    space,
    append: async (entry) => (await appendInvocation({ agent, service: s.did as API.DID, space: space.did(), entry: text(entry), agentToService: a2s })).delegate(),
  }
}

const integrated = async (s: Svc, space: Key) => ((await (await fetch(`${s.url}/logs/${space.did()}/head`)).json()) as { integratedSize: number }).integratedSize

describe('back-pressure: a bounded service-wide queue', () => {
  it('a flood from one address gets 503 ServiceBusy with Retry-After once the queue is full; another address\'s appends all succeed', async () => {
    // One turn at a time in the whole service, a queue of 3: the flood must wait and overflow it.
    const s = await start({ authorizeConcurrency: 1, clientConcurrency: 1, maxQueuedRequests: 3 })
    const flooder = await agentOf(s)
    const honest = await agentOf(s)
    const FLOOD = 80
    const HONEST = 8
    const floodBodies = await Promise.all(Array.from({ length: FLOOD }, async (_, i) => encodeRequest([await flooder.append(`flood ${i}`)])))
    const honestBodies = await Promise.all(Array.from({ length: HONEST }, async (_, i) => encodeRequest([await honest.append(`honest ${i}`)])))

    const flood = Promise.all(floodBodies.map((b) => postFrom(s.url, b, '127.0.0.2')))
    // The honest address sends one request at a time while the flood is in flight.
    const honestStatuses: number[] = []
    for (const body of honestBodies) {
      const res = await postFrom(s.url, body, '127.0.0.1')
      honestStatuses.push(res.status)
      expect(res.status, new TextDecoder().decode(res.body)).toBe(200)
      const message = (await CAR.response.decode({ headers: res.headers, body: res.body } as never)) as API.AgentMessage
      const [receipt] = [...message.receipts.values()] as API.Receipt[]
      expect(outOf(receipt!).ok).toBeDefined()
    }
    const floodResults = await flood

    expect(honestStatuses).toEqual(Array(HONEST).fill(200))
    expect(await integrated(s, honest.space)).toBe(HONEST)

    const busy = floodResults.filter((r) => r.status === 503)
    const answered = floodResults.filter((r) => r.status === 200)
    expect(busy.length + answered.length, 'the flood gets only 200s and 503s').toBe(FLOOD)
    expect(busy.length).toBeGreaterThan(0)
    for (const r of busy) {
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1)
      expect(new TextDecoder().decode(r.body)).toMatch(/^ServiceBusy: .*retry later\n$/)
    }
    // Nothing ran for a 503: the flooder's log holds exactly its answered appends.
    let appended = 0
    for (const r of answered) {
      const message = (await CAR.response.decode({ headers: r.headers, body: r.body } as never)) as API.AgentMessage
      for (const receipt of message.receipts.values()) if (outOf(receipt as API.Receipt).ok) appended++
    }
    expect(await integrated(s, flooder.space)).toBe(appended)
  })
})
