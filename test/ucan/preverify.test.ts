/**
 * Pre-verification on other threads (src/ucan/preverify.ts, preverify-pool.ts): which UCANs of a
 * request it vouches for (only canonical, validly signed, hashing to their CID), that the service
 * then skips exactly those signature checks, and that what it vouches for can never make a forged
 * UCAN pass (the verified-UCAN cache re-hashes the bytes it is shown).
 */
import { afterEach, beforeAll, describe, expect, test } from 'vitest'
import { Delegation, UCAN, delegate } from '@ucanto/core'
import type { API } from '@ucanto/core'
import * as cborg from 'cborg'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import {
  TlogAppend,
  createPreverifyPool,
  createPrincipalParser,
  createUcanService,
  createVerifiedUcanCache,
  delegateAgentToService,
  delegateSpaceToAgent,
  formatDelegation,
  isPreverified,
  markPreverified,
  preverifyRequest,
  type PreverifyPool,
  PREVERIFY_MIN_INVOCATIONS,
} from '../../src/ucan/index.js'
import { encodeBase64 } from '../../src/tlog/encoding.js'
import { type Principals, RecordingLog, encodeRequest, impostor, now, outOf, principals } from './helpers.js'
import * as CAR from '@ucanto/transport/car'

let P: Principals
let spaceToAgent: API.Delegation
let agentToService: API.Delegation
let delegationString: string

beforeAll(async () => {
  P = await principals()
  spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() + 86400 })
  agentToService = await delegateAgentToService({ agent: P.agent, service: P.service.did(), proofs: [spaceToAgent], expiration: now() + 86400 })
  delegationString = await formatDelegation(agentToService)
})

/** A signed honest tlog/append invocation (a nonce each: distinct CIDs). */
async function appendInvocation(issuer: API.Signer = P.agent, delegation = delegationString): Promise<API.Invocation> {
  return await TlogAppend.invoke({
    issuer,
    audience: P.service,
    with: P.space.did(),
    nb: { data: encodeBase64(new TextEncoder().encode('entry')), delegation },
    expiration: now() + 300,
    nonce: Math.random().toString(36),
  }).delegate()
}

/** The same block (`ucan`'s bytes) under another CID: `Delegation.create` does not re-hash. */
function reroot<T extends API.Delegation>(ucan: T, cid: CID): T {
  return Delegation.create({ root: { cid, bytes: ucan.root.bytes } as never }) as unknown as T
}

/** CIDs over `bytes`' sha2-256 digest that are not dag-cbor/sha2-256: raw codec, and dag-cbor claiming sha2-512 (0x13). */
async function oddCids(bytes: Uint8Array): Promise<{ raw: CID; sha512: CID }> {
  const digest = await sha256.digest(bytes)
  return { raw: CID.createV1(0x55, digest), sha512: CID.createV1(0x71, Digest.create(0x13, digest.digest)) }
}

/** The request's pre-verified CIDs (in-thread). */
async function preverifyOf(invocations: API.Invocation[], options: Partial<Parameters<typeof preverifyRequest>[2]> = {}) {
  const { headers, body } = await encodeRequest(invocations)
  return await preverifyRequest(body, headers['content-type'] as string, { maxInvocations: 64, ...options })
}

/** A signed invocation of capability `can` on the space, with `nb` (or none). */
async function invocationOf(can: string, nb?: Record<string, unknown>, issuer: API.Signer = P.agent): Promise<API.Invocation> {
  return (await delegate({
    issuer,
    audience: P.service,
    capabilities: [{ can, with: P.space.did(), ...(nb !== undefined && { nb }) }] as never,
    expiration: now() + 300,
    nonce: Math.random().toString(36),
  })) as unknown as API.Invocation
}

/** A principal parser counting the signatures it is asked to verify. */
function countingPrincipal() {
  const inner = createPrincipalParser()
  const counter = { verifies: 0 }
  const parser: API.PrincipalParser = {
    parse(did) {
      const v = inner.parse(did)
      const counting = Object.create(v) as API.Verifier
      counting.did = () => v.did()
      counting.verify = (payload, signature) => {
        counter.verifies++
        return v.verify(payload, signature)
      }
      return counting
    },
  }
  return { parser, counter }
}

describe('preverifyRequest', () => {
  test('vouches for each invocation, its Agent→Service delegation and the Space→Agent proof, once each', async () => {
    const a = await appendInvocation()
    const b = await appendInvocation()
    const { headers, body } = await encodeRequest([a, b])
    const pre = await preverifyRequest(body, headers['content-type'] as string, { maxInvocations: 64 })
    expect(pre.invocations.sort()).toEqual([a.cid.toString(), b.cid.toString()].sort())
    expect(pre.delegations).toEqual([agentToService.cid.toString()])
    expect(pre.proofs).toEqual([spaceToAgent.cid.toString()])
  })

  test('an invocation whose signature does not verify is not vouched for; the rest still is', async () => {
    const bad = await appendInvocation(impostor(P.agent, P.alice))
    const good = await appendInvocation()
    const { headers, body } = await encodeRequest([bad, good])
    const pre = await preverifyRequest(body, headers['content-type'] as string, { maxInvocations: 64 })
    expect(pre.invocations).toEqual([good.cid.toString()])
    expect(pre.delegations).toEqual([agentToService.cid.toString()])
  })

  test('a delegation chain with a badly signed proof: the proof is not vouched for', async () => {
    const badProof = await delegateSpaceToAgent({ space: impostor(P.space, P.alice) as never, agent: P.agent, expiration: now() + 3600 })
    const top = await delegateAgentToService({ agent: P.agent, service: P.service.did(), proofs: [badProof], expiration: now() + 3600 })
    const inv = await appendInvocation(P.agent, await formatDelegation(top))
    const { headers, body } = await encodeRequest([inv])
    const pre = await preverifyRequest(body, headers['content-type'] as string, { maxInvocations: 64 })
    expect(pre.invocations).toEqual([inv.cid.toString()])
    expect(pre.delegations).toEqual([top.cid.toString()])
    expect(pre.proofs).toEqual([])
  })

  test('an invocation block that hashes to its CID but is not the canonical encoding is not vouched for', async () => {
    const honest = await appendInvocation()
    // The same UCAN, its map keys written in reverse order: valid CBOR, valid signature, another CID.
    const bytes = cborg.encode(cborg.decode(honest.root.bytes), { mapSorter: ((a: [{ value: string }], b: [{ value: string }]) => (a[0].value < b[0].value ? 1 : -1)) as never })
    const cid = CID.createV1(0x71, await sha256.digest(bytes))
    const odd = Delegation.create({ root: { cid, bytes } as never }) as API.Invocation
    expect(Buffer.from(bytes).equals(Buffer.from(honest.root.bytes))).toBe(false)
    const { headers, body } = await encodeRequest([odd])
    const pre = await preverifyRequest(body, headers['content-type'] as string, { maxInvocations: 64 })
    expect(pre.invocations).toEqual([])
    expect(pre.delegations).toEqual([agentToService.cid.toString()])
  })

  test('looks at no more than maxInvocations invocations', async () => {
    const invs = await Promise.all([1, 2, 3].map(() => appendInvocation()))
    const { headers, body } = await encodeRequest(invs)
    const pre = await preverifyRequest(body, headers['content-type'] as string, { maxInvocations: 2 })
    expect(pre.invocations).toHaveLength(2)
  })

  test('a body that is not a CAR agent message, or the wrong content type: nothing vouched for, no throw', async () => {
    const empty = { invocations: [], delegations: [], proofs: [] }
    expect(await preverifyRequest(new Uint8Array([1, 2, 3]), 'application/vnd.ipld.car', { maxInvocations: 64 })).toEqual(empty)
    const { body } = await encodeRequest([await appendInvocation()])
    expect(await preverifyRequest(body, 'text/plain', { maxInvocations: 64 })).toEqual(empty)
  })

  test('checks the CID names the bytes: a validly signed block under a CID its bytes do not hash to is not vouched for', async () => {
    const honest = await appendInvocation()
    const elsewhere = CID.createV1(0x71, await sha256.digest(new TextEncoder().encode('other bytes')))
    const pre = await preverifyOf([reroot(honest, elsewhere)])
    expect(pre.invocations).toEqual([])
    expect(pre.delegations).toEqual([agentToService.cid.toString()])
  })

  test('only dag-cbor blocks under sha2-256 CIDs are vouched for: a raw-codec CID, or a multihash code other than sha2-256 over the same digest, is not', async () => {
    const [a, b] = [await appendInvocation(), await appendInvocation()]
    const odd = [reroot(a, (await oddCids(a.root.bytes)).raw), reroot(b, (await oddCids(b.root.bytes)).sha512)]
    const pre = await preverifyOf(odd)
    expect(pre.invocations).toEqual([])
    expect(pre.delegations).toEqual([agentToService.cid.toString()])
  })

  test('a JWT-encoded UCAN (validly signed, under a dag-cbor/sha2-256 CID of its bytes) is not vouched for', async () => {
    const honest = await appendInvocation()
    // The honest JWT with its payload's keys in reverse order: dag-ucan keeps it as a JWT view, signature still valid.
    const [h, p, sig] = UCAN.format(honest.data).split('.') as [string, string, string]
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>
    const reversed = Object.fromEntries(Object.entries(payload).reverse())
    const bytes = new TextEncoder().encode(`${h}.${Buffer.from(JSON.stringify(reversed)).toString('base64url')}.${sig}`)
    const jwt = Delegation.create({ root: { cid: CID.createV1(0x71, await sha256.digest(bytes)), bytes } as never }) as API.Invocation
    expect((jwt.data as { jwt?: unknown }).jwt).toBeDefined()
    expect(await UCAN.verifySignature(jwt.data, P.agent.verifier)).toBe(true)
    const pre = await preverifyOf([jwt])
    expect(pre.invocations).toEqual([])
    expect(pre.delegations).toEqual([agentToService.cid.toString()])
  })

  test('only did:key issuers are vouched for: a did:web issuer is not, even when the principal parser resolves it', async () => {
    const inner = createPrincipalParser()
    const resolving: API.PrincipalParser = {
      parse: (did) => (did.startsWith('did:web:') ? inner.parse(P.agent.did()).withDID(did) : inner.parse(did)),
    }
    const web = await invocationOf('tlog/append', { data: 'AA==', delegation: delegationString }, P.agent.withDID('did:web:agent.example'))
    const pre = await preverifyOf([web], { principal: resolving })
    expect(pre.invocations).toEqual([])
    expect(pre.delegations).toEqual([agentToService.cid.toString()])
  })

  test("a UCAN whose payload this file does not write (a boolean in nb) is verified through ucanto's verifySignature and vouched for", async () => {
    const flagged = await invocationOf('tlog/append', { data: 'AA==', delegation: delegationString, flag: true })
    const forged = await invocationOf('tlog/append', { data: 'AA==', delegation: delegationString, flag: true }, impostor(P.agent, P.alice))
    const pre = await preverifyOf([flagged, forged])
    expect(pre.invocations).toEqual([flagged.cid.toString()])
  })

  test('a UCAN whose check throws (an issuer did:key no verifier parses) is not vouched for', async () => {
    const secp = 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme'
    const unparsable = await invocationOf('tlog/append', { data: 'AA==', delegation: delegationString }, { ...impostor(P.agent, P.agent), did: () => secp } as never)
    expect(unparsable.issuer.did()).toBe(secp)
    const pre = await preverifyOf([unparsable])
    expect(pre.invocations).toEqual([])
    expect(pre.delegations).toEqual([agentToService.cid.toString()])
  })

  test('an invocation without nb, or with an nb.delegation that does not parse, is skipped: the next invocations are still looked at', async () => {
    const bare = await invocationOf('tlog/append')
    expect(bare.capabilities[0]?.nb).toBeUndefined()
    const unparsable = await invocationOf('tlog/append', { data: 'AA==', delegation: 'not a delegation' })
    const honest = await appendInvocation()
    const pre = await preverifyOf([bare, unparsable, honest])
    expect(pre.invocations.sort()).toEqual([bare, unparsable, honest].map((i) => i.cid.toString()).sort())
    expect(pre.delegations).toEqual([agentToService.cid.toString()])
    expect(pre.proofs).toEqual([spaceToAgent.cid.toString()])
  })

  test('proofs that are links (not embedded) are skipped, at the top and below: the rest of the request is still looked at', async () => {
    const absent = spaceToAgent.cid
    const top = await delegateAgentToService({ agent: P.agent, service: P.service.did(), space: P.space.did(), proofs: [absent as never], expiration: now() + 3600 })
    const mid = await delegate({ issuer: P.space, audience: P.agent, capabilities: [{ can: 'tlog/append', with: P.space.did() }], proofs: [absent as never], expiration: now() + 3600 })
    const top2 = await delegateAgentToService({ agent: P.agent, service: P.service.did(), proofs: [mid], expiration: now() + 3600 })
    const first = await appendInvocation(P.agent, await formatDelegation(top))
    const second = await appendInvocation(P.agent, await formatDelegation(top2))
    const honest = await appendInvocation()
    const pre = await preverifyOf([first, second, honest])
    expect(pre.invocations.sort()).toEqual([first, second, honest].map((i) => i.cid.toString()).sort())
    expect(pre.delegations.sort()).toEqual([top, top2, agentToService].map((d) => d.cid.toString()).sort())
    expect(pre.proofs.sort()).toEqual([mid, spaceToAgent].map((d) => d.cid.toString()).sort())
  })

  test('walks the whole chain: Space→Alice→Agent→Service vouches for both proofs below the delegation', async () => {
    const spaceToAlice = await delegateSpaceToAgent({ space: P.space, agent: P.alice, expiration: now() + 3600 })
    const aliceToAgent = await delegate({ issuer: P.alice, audience: P.agent, capabilities: spaceToAlice.capabilities, proofs: [spaceToAlice], expiration: now() + 3600 })
    const top = await delegateAgentToService({ agent: P.agent, service: P.service.did(), proofs: [aliceToAgent], expiration: now() + 3600 })
    const pre = await preverifyOf([await appendInvocation(P.agent, await formatDelegation(top))])
    expect(pre.delegations).toEqual([top.cid.toString()])
    expect(pre.proofs).toEqual([aliceToAgent.cid.toString(), spaceToAlice.cid.toString()])
  })

  test('CIDs verified before (`known`) are vouched for without verifying again', async () => {
    const known = new Set<string>()
    const { parser, counter } = countingPrincipal()
    const first = await encodeRequest([await appendInvocation()])
    await preverifyRequest(first.body, first.headers['content-type'] as string, { maxInvocations: 64, known, principal: parser })
    expect(counter.verifies).toBe(3)
    const second = await encodeRequest([await appendInvocation()])
    const pre = await preverifyRequest(second.body, second.headers['content-type'] as string, { maxInvocations: 64, known, principal: parser })
    expect(counter.verifies).toBe(4) // only the new invocation
    expect(pre.proofs).toEqual([spaceToAgent.cid.toString()])
  })
})

describe('the service with pre-verification', () => {
  /** Sends `invocations` in one request; each receipt's outcome, in order. */
  async function sendAll(server: ReturnType<typeof createUcanService>, invocations: API.Invocation[]) {
    const res = await server.request(await encodeRequest(invocations))
    const receipts = (await CAR.outbound.decode(res as never)).receipts
    return invocations.map((inv) => outOf(receipts.get(inv.cid.toString() as never) as API.Receipt))
  }
  const batch = (n: number, issuer?: API.Signer) => Promise.all(Array.from({ length: n }, () => appendInvocation(issuer)))

  test('skips exactly the signatures vouched for, and still appends', async () => {
    const { parser, counter } = countingPrincipal()
    const log = new RecordingLog()
    let handed = 0
    const server = createUcanService({
      signer: P.service,
      log,
      principal: parser,
      preverify: (body, contentType) => (handed++, preverifyRequest(body, contentType, { maxInvocations: 64 })),
    })
    const outs = await sendAll(server, await batch(PREVERIFY_MIN_INVOCATIONS))
    expect(outs.map((o) => o.error)).toEqual(outs.map(() => undefined))
    expect(log.appends).toHaveLength(PREVERIFY_MIN_INVOCATIONS)
    expect(handed).toBe(1)
    expect(counter.verifies).toBe(0)
  })

  test(`a request of fewer than ${PREVERIFY_MIN_INVOCATIONS} invocations is checked on the calling thread alone`, async () => {
    const { parser, counter } = countingPrincipal()
    const log = new RecordingLog()
    let handed = 0
    const server = createUcanService({ signer: P.service, log, principal: parser, preverify: async () => (handed++, undefined) })
    const outs = await sendAll(server, await batch(PREVERIFY_MIN_INVOCATIONS - 1))
    expect(outs.map((o) => o.error)).toEqual(outs.map(() => undefined))
    expect(handed).toBe(0)
    expect(counter.verifies).toBeGreaterThanOrEqual(PREVERIFY_MIN_INVOCATIONS)
  })

  test('a forged invocation is refused InvalidSignature although the pre-verifier answered; the others append', async () => {
    const log = new RecordingLog()
    const server = createUcanService({ signer: P.service, log, preverify: (body, contentType) => preverifyRequest(body, contentType, { maxInvocations: 64 }) })
    const forged = await appendInvocation(impostor(P.agent, P.alice))
    const honest = await batch(PREVERIFY_MIN_INVOCATIONS)
    const outs = await sendAll(server, [forged, ...honest])
    expect(outs[0]?.error?.name).toBe('InvalidSignature')
    expect(outs.slice(1).map((o) => o.error)).toEqual(honest.map(() => undefined))
    expect(log.appends).toHaveLength(honest.length)
  })

  test('a pre-verifier that answers nothing (busy, crashed) changes nothing but where the checks run', async () => {
    const { parser, counter } = countingPrincipal()
    const log = new RecordingLog()
    const server = createUcanService({ signer: P.service, log, principal: parser, preverify: async () => undefined })
    const outs = await sendAll(server, await batch(PREVERIFY_MIN_INVOCATIONS))
    expect(outs.map((o) => o.error)).toEqual(outs.map(() => undefined))
    expect(counter.verifies).toBeGreaterThanOrEqual(2 * PREVERIFY_MIN_INVOCATIONS)
  })
})

describe('what a CID vouched for covers', () => {
  test('the cache re-hashes: a CID vouched for matches only the bytes that hash to it', async () => {
    const ucans = createVerifiedUcanCache()
    ucans.addCid(agentToService.cid.toString(), { delegation: true })
    expect(ucans.has(agentToService)).toBe(true)
    // Another UCAN's bytes presented under the vouched-for CID: not a hit.
    const impostor = Object.create(spaceToAgent, { root: { value: { cid: agentToService.cid, bytes: spaceToAgent.root.bytes } } }) as API.Delegation
    expect(ucans.has(impostor)).toBe(false)
    // Not a dag-cbor/sha2-256 CID string (or not canonical): ignored.
    ucans.addCid('not a cid')
    ucans.addCid(`${agentToService.cid.toString()} `)
    expect(ucans.size).toBe(1)
  })

  test('markPreverified notes an object only when its bytes hash to its CID', () => {
    const impostor = Object.create(spaceToAgent, { root: { value: { cid: agentToService.cid, bytes: spaceToAgent.root.bytes } } }) as API.Delegation
    expect(markPreverified(impostor)).toBe(false)
    expect(isPreverified(impostor)).toBe(false)
    expect(markPreverified(spaceToAgent)).toBe(true)
    expect(isPreverified(spaceToAgent)).toBe(true)
  })
})

describe('createPreverifyPool (worker threads)', () => {
  let pool: PreverifyPool | undefined
  afterEach(async () => {
    await pool?.close()
    pool = undefined
  })

  test('a worker answers what preverifyRequest answers in-thread', async () => {
    pool = createPreverifyPool({ workers: 1, maxInvocations: 64 })
    const inv = await appendInvocation()
    const { headers, body } = await encodeRequest([inv])
    const viaPool = await pool.run(body, headers['content-type'] as string)
    const direct = await preverifyRequest(body, headers['content-type'] as string, { maxInvocations: 64 })
    expect(viaPool).toEqual(direct)
    expect(viaPool?.invocations).toEqual([inv.cid.toString()])
  })

  test('past maxPending, and after close, a request is left to the main thread (undefined)', async () => {
    pool = createPreverifyPool({ workers: 1, maxInvocations: 64, maxPending: 1 })
    const { headers, body } = await encodeRequest([await appendInvocation()])
    const ct = headers['content-type'] as string
    const [a, b] = await Promise.all([pool.run(body, ct), pool.run(body, ct)])
    expect(a?.invocations).toHaveLength(1)
    expect(b).toBeUndefined()
    await pool.close()
    expect(await pool.run(body, ct)).toBeUndefined()
  })

  test('bad options are refused by name', () => {
    expect(() => createPreverifyPool({ workers: 0, maxInvocations: 1 })).toThrow(RangeError)
    expect(() => createPreverifyPool({ workers: 1, maxInvocations: 0 })).toThrow(RangeError)
  })
})
