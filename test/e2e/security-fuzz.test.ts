/**
 * Property tests (fast-check) against the real RPC route over HTTP: random bodies, mutated CAR
 * agent messages and random `nb` values. Properties: every request gets an HTTP answer (never a
 * dropped connection or a 5xx), receipts carry only `{ name, message }` errors, the service stays
 * healthy, and the log grows by exactly the number of distinct accepted invocations — a refused
 * invocation never appends. Each test fuzzes a space of its own (fresh keys, fresh counts, set up
 * in beforeEach) and checks these properties on it at its end, so no test relies on another.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { invoke } from '@ucanto/core'
import type * as API from '@ucanto/interface'
import * as CAR from '@ucanto/transport/car'
import { encodeBase64 } from '../../src/tlog/index.js'
import {
  delegateAgentToService,
  delegateSpaceToAgent,
  formatDelegation,
  generateKey,
  type Key,
} from '../../src/ucan/index.js'
import { encodeRequest } from '../ucan/helpers.js'
import { startTestService } from './helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>
let svc: Svc
let space: Key, agent: Key
let delegationString: string
/** Distinct invocation CIDs whose receipt is an ok `tlog/append` result (it has a `checkpoint`), this test. */
const accepted = new Set<string>()
/** Requests posted by this test. */
let requests = 0

const CAR_TYPE = 'application/vnd.ipld.car'
const NUM_RUNS = 60

beforeAll(async () => {
  svc = await startTestService({ agentRate: 0, spaceRate: 0 })
})
beforeEach(async () => {
  space = await generateKey()
  agent = await generateKey()
  const s2a = await delegateSpaceToAgent({ space, agent })
  delegationString = await formatDelegation(await delegateAgentToService({ agent, service: svc.did as API.DID, proofs: [s2a] }))
  accepted.clear()
  requests = 0
})
afterAll(async () => {
  await svc?.stop()
})

/** POSTs a body; checks the answer's shape; records accepted invocations. Never throws on status. */
async function post(body: Uint8Array, contentType = CAR_TYPE): Promise<number> {
  requests++
  const res = await fetch(`${svc.url}/rpc`, { method: 'POST', headers: { 'content-type': contentType }, body })
  const bytes = new Uint8Array(await res.arrayBuffer())
  expect([200, 400, 406, 413, 415]).toContain(res.status)
  if (res.status !== 200) {
    const text = new TextDecoder().decode(bytes)
    expect(text.length).toBeLessThan(500)
    expect(text).not.toMatch(/\n\s+at .+:\d+:\d+/) // no stack trace
    return res.status
  }
  const message = (await CAR.response.decode({ headers: Object.fromEntries(res.headers), body: bytes } as never)) as API.AgentMessage
  for (const receipt of message.receipts.values()) {
    const out = receipt.out as { ok?: unknown; error?: Record<string, unknown> }
    if (out.error !== undefined) {
      expect(Object.keys(out.error).sort()).toEqual(['message', 'name'])
      expect(String(out.error.message).length).toBeLessThan(300)
    } else if (typeof out.ok === 'object' && out.ok !== null && 'checkpoint' in out.ok) {
      accepted.add(receipt.ran.link().toString())
    }
  }
  return 200
}

async function treeSize(): Promise<number> {
  const res = await fetch(`${svc.url}/logs/${space.did()}/head`)
  if (res.status === 404) return 0
  return ((await res.json()) as { treeSize: number }).treeSize
}

async function honestBody(entry: Uint8Array): Promise<Uint8Array> {
  const d = await invoke({
    issuer: agent,
    audience: { did: () => svc.did as API.DID },
    capability: { can: 'tlog/append', with: space.did(), nb: { data: encodeBase64(entry), delegation: delegationString } },
    expiration: Math.floor(Date.now() / 1000) + 300,
    nonce: Math.random().toString(36),
  }).delegate()
  return (await encodeRequest([d])).body
}

/**
 * After a fuzz run: the service is healthy, this test's log holds exactly its distinct accepted
 * appends (a refused invocation or a replay never appends), and an honest append lands next.
 */
async function expectLogIsTheAcceptedAppends(minRequests: number): Promise<void> {
  expect((await fetch(`${svc.url}/healthz`)).status).toBe(200)
  const size = await treeSize()
  expect(size).toBe(accepted.size)
  const before = accepted.size
  expect(await post(await honestBody(new TextEncoder().encode('after fuzz')))).toBe(200)
  expect(accepted.size).toBe(before + 1)
  expect(await treeSize()).toBe(size + 1)
  expect(requests).toBeGreaterThan(minRequests)
}

describe('fuzzing the RPC route over HTTP', () => {
  it('random bodies, with and without the CAR content type, are answered 4xx without crashing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), fc.constantFrom(CAR_TYPE, 'text/plain', 'application/json', `${CAR_TYPE}; x=1`), async (body, type) => {
        const status = await post(body, type)
        if (type !== CAR_TYPE) expect(status).toBe(415)
      }),
      { numRuns: NUM_RUNS },
    )
    await expectLogIsTheAcceptedAppends(NUM_RUNS)
  })

  it('mutated honest CAR messages (byte flips, truncations, splices, duplications) never append unless still valid', async () => {
    const base = await honestBody(new TextEncoder().encode('fuzz base'))
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
          fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
          fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
          fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 128 }) }),
        ),
        async (m) => {
          const body = new Uint8Array(base)
          const at = m.at % body.length
          let mutated: Uint8Array
          if (m.kind === 'flip') {
            body[at] = body[at]! ^ m.xor
            mutated = body
          } else if (m.kind === 'truncate') mutated = body.subarray(0, at)
          else if (m.kind === 'splice') mutated = Buffer.concat([body.subarray(0, at), m.bytes, body.subarray(at)])
          else mutated = Buffer.concat([body.subarray(0, at), body.subarray(at + m.len)])
          await post(mutated)
        },
      ),
      { numRuns: NUM_RUNS * 3 },
    )
    await expectLogIsTheAcceptedAppends(NUM_RUNS * 3)
  })

  it('random nb values and capabilities, correctly signed, are refused with a named error or appended once', async () => {
    const jsonish = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.uint8Array({ maxLength: 32 }),
      fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
    )
    const data = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 300 }).map((b) => encodeBase64(b)),
      fc.string({ maxLength: 100 }),
      jsonish,
    )
    const delegation = fc.oneof(
      fc.constant(delegationString),
      fc.nat().map((n) => delegationString.slice(0, n % delegationString.length)),
      fc.tuple(fc.nat(), fc.string({ minLength: 1, maxLength: 1 })).map(([n, c]) => {
        const i = n % delegationString.length
        return delegationString.slice(0, i) + c + delegationString.slice(i + 1)
      }),
      jsonish,
    )
    const can = fc.constantFrom('tlog/append', 'tlog/create', 'tlog/read', 'ucan/revoke', 'tlog/delete', 'constructor', '*')
    const withField = fc.oneof(fc.constant(space.did() as string), fc.constant(agent.did() as string), fc.string({ maxLength: 30 }))
    const extra = fc.dictionary(fc.string({ maxLength: 6 }), jsonish, { maxKeys: 3 })
    await fc.assert(
      fc.asyncProperty(can, withField, data, delegation, extra, fc.boolean(), async (c, w, d, del, more, omit) => {
        const nb: Record<string, unknown> = omit ? { ...more } : { ...more, data: d, delegation: del }
        const inv = await Promise.resolve()
          .then(() =>
            invoke({
              issuer: agent,
              audience: { did: () => svc.did as API.DID },
              capability: { can: c as API.Ability, with: w as API.Resource, nb },
              expiration: Math.floor(Date.now() / 1000) + 300,
              nonce: Math.random().toString(36),
            }).delegate(),
          )
          .catch(() => undefined) // values dag-cbor cannot encode never reach the wire
        if (inv === undefined) return
        await post((await encodeRequest([inv])).body)
      }),
      { numRuns: NUM_RUNS * 2 },
    )
    // About half of the 120 random invocations cannot be built (a `with` that is not a URI, an
    // ability ucanto refuses, values dag-cbor cannot encode) and never reach the wire: the count
    // that did varies with the seed (53–80 seen), so the floor is half of NUM_RUNS.
    await expectLogIsTheAcceptedAppends(NUM_RUNS / 2)
  })
})
