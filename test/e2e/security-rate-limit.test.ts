/**
 * Issue 8 hole 6: rate limits are charged to the party that caused the work. Before the fix the
 * agent and space buckets were charged before the chain was checked (a stranger replaying an
 * agent's signed body drained them, so the agent got 429) and forged signatures were never charged.
 * Now every invocation costs its client address first; a space and its agents pay only for new
 * work a verified chain authorized; reads and failures cost their verified issuer.
 * Over real HTTP from distinct loopback source addresses; the rate limits run on a clock the test
 * moves by hand (manualClock), so a bucket refills only when a test advances it, however slow the
 * machine is.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type * as API from '@ucanto/interface'
import * as CAR from '@ucanto/transport/car'
import { appendInvocation, delegateAgentToService, delegateSpaceToAgent, generateKey, type Key } from '../../src/ucan/index.js'
import type { ServiceConfig } from '../../src/server/config.js'
import { encodeRequest, outOf, type Out } from '../ucan/helpers.js'
import { impostor, manualClock, postFrom, startTestService } from './helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>
const text = (s: string) => new TextEncoder().encode(s)
/** Tokens per second; the clock stands still unless a test advances it. */
const RATE = 1

let svc: Svc | undefined
let clock = manualClock()
afterEach(async () => {
  await svc?.stop()
  svc = undefined
})

async function start(config: Partial<ServiceConfig>): Promise<Svc> {
  clock = manualClock()
  svc = await startTestService(config, { limitsClock: clock.now })
  return svc
}

/** Posts `req` from `from`; the receipt's out for a 200, else the status. */
async function post(s: Svc, req: { headers: Record<string, string>; body: Uint8Array }, from: string): Promise<{ status: number; out?: Out; retryAfter?: string }> {
  const res = await postFrom(s.url, req, from)
  if (res.status !== 200) return { status: res.status, retryAfter: res.headers['retry-after'] }
  const message = (await CAR.response.decode({ headers: res.headers, body: res.body } as never)) as API.AgentMessage
  const [receipt] = [...message.receipts.values()] as API.Receipt[]
  return { status: 200, out: outOf(receipt!) }
}

async function agentOf(s: Svc): Promise<{ space: Key; agent: Key; append: (entry: string) => Promise<API.Invocation> }> {
  const [space, agent] = [await generateKey(), await generateKey()]
  const s2a = await delegateSpaceToAgent({ space, agent })
  const a2s = await delegateAgentToService({ agent, service: s.did as API.DID, proofs: [s2a] })
  return {
    space,
    agent,
    append: async (entry) => (await appendInvocation({ agent, service: s.did as API.DID, space: space.did(), entry: text(entry), agentToService: a2s })).delegate(),
  }
}

describe('rate limits charge the party that caused the work', () => {
  it("a stranger replaying an agent's signed append gets 429s on its own address; the agent keeps appending", async () => {
    const s = await start({ clientRate: RATE, clientBurst: 10, agentRate: RATE, agentBurst: 5, spaceRate: RATE, spaceBurst: 5 } as Partial<ServiceConfig>)
    const real = await agentOf(s)
    const body = await encodeRequest([await real.append('first')])
    const first = await post(s, body, '127.0.0.1')
    expect(first.out?.ok).toMatchObject({ index: 0 })

    const replays = []
    for (let i = 0; i < 40; i++) replays.push(await post(s, body, '127.0.0.2'))
    const answered = replays.filter((r) => r.status === 200)
    // The stranger's own address pays: exactly its burst of replays is answered (the clock stands still), the rest are 429.
    expect(answered.length).toBe(10)
    expect(replays.filter((r) => r.status === 429).length).toBe(30)
    for (const r of answered) expect(r.out?.ok).toMatchObject({ index: 0 }) // a replay never appends again

    // The agent's and the space's buckets were not touched by the replays: 4 more appends, none 429.
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await post(s, await encodeRequest([await real.append(`more ${i}`)]), '127.0.0.1')).status)
    expect(statuses).toEqual([200, 200, 200, 200])
    const head = (await (await fetch(`${s.url}/logs/${real.space.did()}/head`)).json()) as { integratedSize: number }
    expect(head.integratedSize).toBe(5)
  })

  it('a flood of forged signatures is refused with 429 past its address\'s limit; another address is unaffected', async () => {
    const s = await start({ clientRate: RATE, clientBurst: 10 } as Partial<ServiceConfig>)
    const real = await agentOf(s)
    const forger = await generateKey()
    let receipts = 0
    let limited = 0
    for (let i = 0; i < 30; i++) {
      // Claims to be the real agent, signed with another key: it must not cost the real agent anything either.
      const inv = await (await appendInvocation({ agent: impostor(real.agent, forger), service: s.did as API.DID, space: real.space.did(), entry: text(`forged ${i}`), spaceToAgent: await delegateSpaceToAgent({ space: real.space, agent: real.agent }) })).delegate()
      const r = await post(s, await encodeRequest([inv]), '127.0.0.3')
      if (r.status === 200) {
        receipts++
        expect(r.out?.error?.name).toBe('InvalidSignature')
      } else if (r.status === 429) limited++
    }
    expect(receipts).toBe(10)
    expect(limited).toBe(20)
    const ok = await post(s, await encodeRequest([await real.append('still served')]), '127.0.0.1')
    expect(ok.out?.ok).toMatchObject({ index: 0 })
    // One second later (on the limits' clock) the forger's address has earned exactly one more request.
    clock.advance(1000)
    const forged = async () =>
      (await appendInvocation({ agent: impostor(real.agent, forger), service: s.did as API.DID, space: real.space.did(), entry: text('forged later'), spaceToAgent: await delegateSpaceToAgent({ space: real.space, agent: real.agent }) })).delegate()
    const later = [await post(s, await encodeRequest([await forged()]), '127.0.0.3'), await post(s, await encodeRequest([await forged()]), '127.0.0.3')]
    expect(later.map((r) => r.status)).toEqual([200, 429])
    expect(later[0]!.out?.error?.name).toBe('InvalidSignature')
  })

  it('unauthorized traffic (valid signature, no grant) is charged to its issuer and address, not to the space it names', async () => {
    const s = await start({ clientRate: RATE, clientBurst: 20, agentRate: RATE, agentBurst: 3, spaceRate: RATE, spaceBurst: 3 } as Partial<ServiceConfig>)
    const real = await agentOf(s)
    const outcomes: string[] = []
    for (const _ of [1, 2]) {
      const mallory = await generateKey()
      // A self-made delegation on the victim's space, with no proof from it.
      const a2s = await delegateAgentToService({ agent: mallory, service: s.did as API.DID, proofs: [], space: real.space.did() })
      for (let i = 0; i < 10; i++) {
        const inv = await (await appendInvocation({ agent: mallory, service: s.did as API.DID, space: real.space.did(), entry: text(`x${i}`), agentToService: a2s })).delegate()
        const r = await post(s, await encodeRequest([inv]), '127.0.0.4')
        outcomes.push(r.status === 200 ? String(r.out?.error?.name) : String(r.status))
      }
    }
    // Each issuer gets its burst of refusals, then 429: the issuer paid.
    expect(outcomes).toEqual([...Array(3).fill('Unauthorized'), ...Array(7).fill('429'), ...Array(3).fill('Unauthorized'), ...Array(7).fill('429')])
    // The address paid for all 20: a third fresh key from it is refused at once.
    const third = await generateKey()
    const a2s = await delegateAgentToService({ agent: third, service: s.did as API.DID, proofs: [], space: real.space.did() })
    const r = await post(s, await encodeRequest([await (await appendInvocation({ agent: third, service: s.did as API.DID, space: real.space.did(), entry: text('x'), agentToService: a2s })).delegate()]), '127.0.0.4')
    expect(r.status).toBe(429)
    // The space's bucket (burst 3) is untouched: its real agent appends 3 times.
    const statuses = []
    for (let i = 0; i < 3; i++) statuses.push((await post(s, await encodeRequest([await real.append(`mine ${i}`)]), '127.0.0.1')).status)
    expect(statuses).toEqual([200, 200, 200])
  })
})
