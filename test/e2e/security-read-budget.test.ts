/**
 * Issue 8, hole 2: read amplification. 64 `tlog/read` invocations in one small request used to
 * return 64 full pages (each up to 4 MiB); now all reads of one request share one response budget
 * (`maxResponseBytes`), reads past it return fewer entries or `ResponseTooLarge`, and a read needs
 * a bounded expiry like an append (no replaying one signed read forever).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { invoke } from '@ucanto/core'
import type * as API from '@ucanto/interface'
import * as CAR from '@ucanto/transport/car'
import { appendInvocation, delegateSpaceToAgent, generateKey, type Key } from '../../src/ucan/index.js'
import { encodeRequest } from '../ucan/helpers.js'
import { manualClock, startTestService, ucanSeconds } from './helpers.js'

const BUDGET = 512 * 1024
const ENTRY = 60_000
const ENTRIES = 8
/** Room per receipt for what is not entry text: the echoed invocation, CIDs, the signature, CBOR framing. */
const RECEIPT_OVERHEAD = 2048

let svc: Awaited<ReturnType<typeof startTestService>>
/** The service's invocation clock (ms): moved by hand past a read's exp, never waited for. */
const clock = manualClock()
let space: Key, agent: Key, reader: Key

beforeAll(async () => {
  svc = await startTestService({ agentRate: 0, spaceRate: 0, maxResponseBytes: BUDGET, maxInvocationLifetime: 60 } as never, { ucanClock: ucanSeconds(clock) })
  space = await generateKey()
  agent = await generateKey()
  reader = await generateKey()
  const spaceToAgent = await delegateSpaceToAgent({ space, agent })
  const appends = []
  for (let i = 0; i < ENTRIES; i++) {
    appends.push(await (await appendInvocation({ agent, service: svc.did as API.DID, space: space.did(), entry: new Uint8Array(ENTRY).fill(i + 1), spaceToAgent, lifetime: 30 })).delegate())
  }
  const res = await post((await encodeRequest(appends as API.Invocation[])).body)
  expect(res.outcomes).toEqual(Array(ENTRIES).fill('ok'))
}, 30_000)

afterAll(async () => {
  await svc?.stop()
})

async function post(body: Uint8Array): Promise<{ bytes: number; outcomes: string[]; entryBytes: number }> {
  const res = await fetch(`${svc.url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/vnd.ipld.car' }, body })
  const bytes = new Uint8Array(await res.arrayBuffer())
  expect(res.status).toBe(200)
  const message = (await CAR.response.decode({ headers: Object.fromEntries(res.headers), body: bytes } as never)) as API.AgentMessage
  let entryBytes = 0
  const outcomes = [...message.receipts.values()].map((r) => {
    const out = r.out as { ok?: { entries?: string[] }; error?: { name: string } }
    for (const e of out.ok?.entries ?? []) entryBytes += e.length
    return out.error?.name ?? 'ok'
  })
  return { bytes: bytes.length, outcomes, entryBytes }
}

/**
 * A read of the whole log; a fresh nonce each, so 64 of them are 64 distinct invocations. Its exp
 * is `lifetime` seconds after the service's clock (which a test may have moved ahead of real time).
 */
const read = async (lifetime = 30) =>
  (await invoke({
    issuer: reader,
    audience: { did: () => svc.did as API.DID },
    capability: { can: 'tlog/read', with: space.did(), nb: { limit: 1000 } },
    expiration: ucanSeconds(clock)() + lifetime,
    nonce: Math.random().toString(36),
  }).delegate()) as API.Invocation

describe('one response budget per request', () => {
  it('64 reads of a log of 60 KB entries in one request answer within the budget', async () => {
    const reads = await Promise.all(Array.from({ length: 64 }, () => read()))
    const { bytes, outcomes, entryBytes } = await post((await encodeRequest(reads)).body)
    expect(entryBytes).toBeLessThanOrEqual(BUDGET)
    expect(bytes).toBeLessThanOrEqual(BUDGET + 64 * RECEIPT_OVERHEAD)
    // The first read served gets what the budget holds (6 entries); the others find it spent.
    expect(outcomes).toHaveLength(64)
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(1)
    expect(entryBytes).toBe(6 * 80_000)
    expect(outcomes).toContain('ResponseTooLarge')
    expect(outcomes.every((o) => o === 'ok' || o === 'ResponseTooLarge')).toBe(true)
  })

  it('a single read that fits is served whole', async () => {
    const { outcomes, entryBytes } = await post((await encodeRequest([await read()])).body)
    expect(outcomes).toEqual(['ok'])
    // 8 entries × base64(60,000 B) = 640,000 characters > 512 KiB: the page stops at the budget.
    expect(entryBytes).toBe(6 * 80_000)
  })
})

describe('reads need a bounded expiry', () => {
  it('a read with no exp → InvalidExpiry', async () => {
    const inv = await invoke({
      issuer: reader,
      audience: { did: () => svc.did as API.DID },
      capability: { can: 'tlog/read', with: space.did(), nb: {} },
      expiration: Infinity,
    }).delegate()
    expect((await post((await encodeRequest([inv as API.Invocation])).body)).outcomes).toEqual(['InvalidExpiry'])
  })

  it('a read whose exp is further ahead than maxInvocationLifetime → InvalidExpiry', async () => {
    expect((await post((await encodeRequest([await read(3600)])).body)).outcomes).toEqual(['InvalidExpiry'])
  })

  it('replaying a read after its exp → Expired', async () => {
    // 30 s: ucanto checks the invocation's exp on the system clock, which must not lapse meanwhile;
    // the service's own expiry check runs on the injected clock, moved past exp below.
    const inv = await read(30)
    const body = (await encodeRequest([inv])).body
    expect((await post(body)).outcomes).toEqual(['ok'])
    // At its exp second it is still valid (nbf ≤ now ≤ exp)…
    clock.advance(inv.expiration * 1000 - clock.now())
    expect((await post(body)).outcomes).toEqual(['ok'])
    // …one second later (on the service's clock) it has expired.
    clock.advance(1000)
    expect((await post(body)).outcomes).toEqual(['Expired'])
  })
})
