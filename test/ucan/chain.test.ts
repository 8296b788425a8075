/**
 * chain.ts (check 11 of docs/wire.md, computed directly) against ucanto's validator as the oracle:
 * grants.ts `findGrants` with no cache is the probe + `claim` path ucanlog used before, run here
 * with ucanto's own pure-JS `Verifier`. For every chain below — valid ones and each way one can
 * fail (expired or not-yet-valid proofs at the exact bounds, wrong audience, missing capability,
 * wrong space, wildcards incl. `ucan:*`, caveats, bad signatures, unavailable proofs, revoked) —
 * both answer the same: ok or the same failure name and message, the same path, the same
 * revocation query; with a cold and a warm verified-UCAN cache alike.
 */
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest'
import { delegate } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { Absentee, Verifier } from '@ucanto/principal'
import { sha256 } from 'multiformats/hashes/sha2'
import * as Link from 'multiformats/link'
import {
  STORACHA_ABILITIES,
  UCANAttest,
  addPathToRevocationQuery,
  authorizeAppend,
  checkChain,
  checkContentAddressed,
  createGrantCache,
  createMemoryRevocations,
  createPrincipalParser,
  createVerifiedUcanCache,
  delegateAgentToService,
  findGrants,
  formatDelegation,
  needsValidator,
  parseDelegation,
  toRevocationQuery,
  TlogAppend,
  type RevocationQuery,
  type VerifiedUcanCache,
} from '../../src/ucan/index.js'
import { type Principals, impostor, pinnedKey, principals } from './helpers.js'

/** The frozen clock of this file (Unix seconds): ucanto reads Date.now(), the direct check gets it injected. */
const T = Math.floor(Date.now() / 1000)
let P: Principals
beforeAll(async () => {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(T * 1000)
  P = await principals()
})
afterAll(() => {
  vi.useRealTimers()
})

const caps = (space: string, cans: readonly string[] = STORACHA_ABILITIES) => cans.map((can) => ({ can, with: space })) as unknown as API.Capabilities

const spaceTo = (audience: API.Principal, o: { exp?: number; nbf?: number; capabilities?: API.Capabilities; issuer?: API.Signer } = {}) =>
  delegate({ issuer: o.issuer ?? P.space, audience, capabilities: o.capabilities ?? caps(P.space.did()), expiration: o.exp ?? T + 3600, ...(o.nbf !== undefined && { notBefore: o.nbf }) })

const toService = (proofs: API.Proof[], o: { exp?: number; nbf?: number; capabilities?: API.Capabilities; issuer?: API.Signer } = {}) =>
  delegate({ issuer: o.issuer ?? P.agent, audience: P.service, capabilities: o.capabilities ?? caps(P.space.did()), proofs, expiration: o.exp ?? T + 3600, ...(o.nbf !== undefined && { notBefore: o.nbf }) })

/** The delegation as the service gets it: formatted, parsed and content-checked (a fresh object each time). */
async function received(d: API.Delegation, ucans?: VerifiedUcanCache): Promise<API.Delegation> {
  const parsed = await parseDelegation(await formatDelegation(d))
  if (parsed.error) throw parsed.error
  expect(await checkContentAddressed(parsed.ok, { ucans })).toBe(true)
  return parsed.ok
}

type Verdict = { ok?: string[][]; error?: { name: string; message: string }; query?: [string, string[]][] }

const sortQuery = (q: RevocationQuery): [string, string[]][] => [...q].map(([k, v]) => [k, [...v].sort()] as [string, string[]]).sort(([a], [b]) => a.localeCompare(b))

/** ucanto's answer: the probe + claim path, no cache, ucanto's own pure-JS verifier. */
async function oracle(d: API.Delegation, space: API.DIDKey): Promise<Verdict> {
  const out = await findGrants(space, await received(d), { service: P.service, principal: Verifier })
  if (out.error) return { error: { name: out.error.name, message: out.error.message } }
  const query: RevocationQuery = new Map()
  const paths = out.ok.map((auth) => {
    const path: string[] = []
    for (let a = auth.proofs[0]; a !== undefined; a = a.proofs[0]) path.push(a.delegation.cid.toString())
    toRevocationQuery(auth.proofs[0] as API.Authorization, query)
    return path
  })
  return { ok: paths, query: sortQuery(query) }
}

/** The direct check's answer (node:crypto principal), with the cache given. */
async function direct(d: API.Delegation, space: API.DIDKey, ucans: VerifiedUcanCache): Promise<Verdict> {
  const r = await received(d, ucans)
  expect(needsValidator(r)).toBe(false)
  const out = await checkChain(space, r, { service: P.service, principal: createPrincipalParser(), now: T, ucans })
  if (out.error) return { error: { name: out.error.name, message: out.error.message } }
  const query: RevocationQuery = new Map()
  for (const path of out.ok) addPathToRevocationQuery(path, query)
  return { ok: out.ok.map((path) => path.map((u) => u.cid.toString())), query: sortQuery(query) }
}

/** Both agree (cold cache, then warm), and the verdict is `expected` (ok, or a failure name). */
async function agree(d: API.Delegation, expected: 'ok' | string, space: API.DIDKey = P.space.did()): Promise<Verdict> {
  const want = await oracle(d, space)
  const ucans = createVerifiedUcanCache()
  expect(await direct(d, space, ucans), 'direct, cold cache').toEqual(want)
  expect(await direct(d, space, ucans), 'direct, warm cache').toEqual(want)
  expect(want.error?.name ?? 'ok').toBe(expected)
  return want
}

describe('the direct chain check agrees with ucanto (claim over the probe) on', () => {
  test('Space→Agent→Service, and a longer Space→Alice→Agent→Service', async () => {
    await agree(await toService([await spaceTo(P.agent)]), 'ok')
    const alice = await spaceTo(P.alice)
    const aliceToAgent = await delegate({ issuer: P.alice, audience: P.agent, capabilities: caps(P.space.did()), proofs: [alice], expiration: T + 3600 })
    const v = await agree(await toService([aliceToAgent]), 'ok')
    expect(v.ok?.[0]).toHaveLength(3)
  })

  test('the agent being the space (a self-issued Agent→Service delegation)', async () => {
    await agree(await toService([], { issuer: P.space }), 'ok')
  })

  test('expiry at the exact bound: exp = now is expired, exp = now + 1 is not (each UCAN of the chain)', async () => {
    await agree(await toService([await spaceTo(P.agent, { exp: T })]), 'Expired')
    await agree(await toService([await spaceTo(P.agent, { exp: T + 1 })]), 'ok')
    await agree(await toService([await spaceTo(P.agent)], { exp: T }), 'Expired')
    await agree(await toService([await spaceTo(P.agent)], { exp: T - 100 }), 'Expired')
  })

  test('not-before at the exact bound: nbf = now is not valid yet, nbf = now - 1 is', async () => {
    await agree(await toService([await spaceTo(P.agent, { nbf: T })]), 'NotValidBefore')
    await agree(await toService([await spaceTo(P.agent, { nbf: T - 1 })]), 'ok')
    await agree(await toService([await spaceTo(P.agent)], { nbf: T + 60 }), 'NotValidBefore')
  })

  test('a bad signature on the Space→Agent proof or on the delegation itself', async () => {
    await agree(await toService([await spaceTo(P.agent, { issuer: impostor(P.space, P.mallory) })]), 'InvalidSignature')
    await agree(await toService([await spaceTo(P.agent)], { issuer: impostor(P.agent, P.mallory) }), 'InvalidSignature')
  })

  test('a proof addressed to someone else (principal alignment) and a proof not embedded', async () => {
    await agree(await toService([await spaceTo(P.mallory)]), 'Unauthorized')
    const proof = await spaceTo(P.agent)
    await agree(await toService([proof.cid as unknown as API.Delegation]), 'Unauthorized')
  })

  test('a missing capability, named (the first of blob/add, index/add, upload/add not granted)', async () => {
    const v = await agree(await toService([await spaceTo(P.agent, { capabilities: caps(P.space.did(), ['space/blob/add', 'space/index/add']) })]), 'Unauthorized')
    expect(v.error?.message).toBe('delegation does not grant upload/add on the space')
    const w = await agree(await toService([await spaceTo(P.agent)], { capabilities: caps(P.space.did(), ['upload/add', 'space/index/add']) }), 'Unauthorized')
    expect(w.error?.message).toBe('delegation does not grant space/blob/add on the space')
  })

  test('the wrong space: a chain rooted at space B, or granting on B, does not grant on A', async () => {
    const bToAgent = await spaceTo(P.agent, { issuer: P.spaceB, capabilities: caps(P.spaceB.did()) })
    await agree(await toService([bToAgent], { capabilities: caps(P.space.did()) }), 'Unauthorized')
    await agree(await toService([bToAgent], { capabilities: caps(P.spaceB.did()) }), 'Unauthorized')
    await agree(await toService([bToAgent], { capabilities: caps(P.spaceB.did()) }), 'ok', P.spaceB.did())
    // Granted on A, asked on B.
    await agree(await toService([await spaceTo(P.agent)]), 'Unauthorized', P.spaceB.did())
  })

  test('wildcards: *, space/*, ucan:* from the space count; ucan:* from anyone else does not; a partial wildcard does not', async () => {
    for (const capabilities of [
      [{ can: '*', with: P.space.did() }],
      [{ can: 'space/*', with: P.space.did() }, { can: 'upload/*', with: P.space.did() }],
      [{ can: '*', with: 'ucan:*' }],
    ]) {
      await agree(await toService([await spaceTo(P.agent, { capabilities: capabilities as unknown as API.Capabilities })]), 'ok')
    }
    // The agent → service link as a wildcard too.
    await agree(await toService([await spaceTo(P.agent)], { capabilities: [{ can: '*', with: 'ucan:*' }] as unknown as API.Capabilities }), 'ok')
    const malloryAll = await delegate({ issuer: P.mallory, audience: P.agent, capabilities: [{ can: '*', with: 'ucan:*' }] as unknown as API.Capabilities, expiration: T + 3600 })
    await agree(await toService([malloryAll]), 'Unauthorized')
    await agree(await toService([await spaceTo(P.agent, { capabilities: [{ can: 'space/blob/*', with: P.space.did() }] as unknown as API.Capabilities })]), 'Unauthorized')
    await agree(await toService([await spaceTo(P.agent, { capabilities: [{ can: 'space/*', with: 'did:key:*' }] as unknown as API.Capabilities })]), 'Unauthorized')
  })

  test('caveats: a grant constrained to one blob, root or index does not grant the capability in general', async () => {
    const digest = await sha256.digest(new Uint8Array([1, 2, 3]))
    for (const constrained of [
      { can: 'space/blob/add', with: P.space.did(), nb: { blob: { digest: digest.bytes, size: 3 } } },
      { can: 'upload/add', with: P.space.did(), nb: { root: Link.create(0x55, digest) } },
      { can: 'space/index/add', with: P.space.did(), nb: { index: Link.create(0x0202, digest) } },
    ]) {
      const rest = caps(P.space.did()).filter((c) => c.can !== constrained.can)
      await agree(await toService([await spaceTo(P.agent, { capabilities: [...rest, constrained] as unknown as API.Capabilities })]), 'Unauthorized')
    }
    // A malformed caveat on the grant: no match either.
    await agree(await toService([await spaceTo(P.agent, { capabilities: [{ can: '*', with: P.space.did(), nb: { blob: 'x' } }] as unknown as API.Capabilities })]), 'Unauthorized')
  })

  test('several proofs: a valid one wins over an expired or forged sibling; with no valid granting one, the most specific name', async () => {
    const good = await spaceTo(P.agent)
    const expired = await spaceTo(P.agent, { exp: T - 10 })
    const forged = await spaceTo(P.agent, { issuer: impostor(P.space, P.mallory), exp: T + 7 })
    const notYet = await spaceTo(P.agent, { nbf: T + 10 })
    const partial = await spaceTo(P.agent, { capabilities: caps(P.space.did(), ['space/blob/add']) })
    await agree(await toService([expired, good]), 'ok')
    await agree(await toService([forged, good]), 'ok')
    await agree(await toService([expired, partial]), 'Expired')
    await agree(await toService([notYet, expired]), 'Expired')
    await agree(await toService([notYet, partial]), 'NotValidBefore')
    await agree(await toService([expired, forged, notYet]), 'InvalidSignature')
    // The first granting path is the one taken (its UCANs are what revocation is checked on).
    const other = await spaceTo(P.agent, { exp: T + 99 })
    const v = await agree(await toService([other, good]), 'ok')
    expect(v.ok?.[0]?.[1]).toBe(other.cid.toString())
  })

  test('a deeper failure under a valid link: an expired root behind a valid intermediate', async () => {
    const alice = await spaceTo(P.alice, { exp: T - 1 })
    const aliceToAgent = await delegate({ issuer: P.alice, audience: P.agent, capabilities: caps(P.space.did()), proofs: [alice], expiration: T + 3600 })
    await agree(await toService([aliceToAgent]), 'Expired')
  })
})

describe('where the direct check defers to ucanto, and what the service decides', () => {
  /** Space → did:mailto account → Agent, attested by `attester`, → Service (as revoke.test.ts builds it). */
  async function mailtoChain(attester: API.Signer, attested = true): Promise<API.Delegation> {
    const account = Absentee.from({ id: 'did:mailto:example.com:alice' })
    const spaceToAccount = await delegate({ issuer: P.space, audience: account, capabilities: [{ can: '*', with: 'ucan:*' }] as unknown as API.Capabilities, expiration: T + 3600 })
    const accountToAgent = await delegate({ issuer: account, audience: P.agent, capabilities: [{ can: '*', with: 'ucan:*' }] as unknown as API.Capabilities, proofs: [spaceToAccount], expiration: T + 3600 })
    const attestation = await UCANAttest.delegate({ issuer: attester, audience: P.agent, with: attester.did(), nb: { proof: accountToAgent.cid }, expiration: T + 3600 })
    return delegateAgentToService({ agent: P.agent, service: P.service, proofs: attested ? [accountToAgent, attestation] : [accountToAgent], space: P.space.did(), expiration: T + 3600 })
  }
  const invocation = async (d: API.Delegation) =>
    TlogAppend.invoke({ issuer: P.agent, audience: P.service, with: P.space.did(), nb: { data: 'AQ==', delegation: await formatDelegation(d) }, expiration: T + 60, nonce: String(Math.random()) }).delegate()

  test('did:mailto chains go to ucanto (needsValidator); with and without the attestation, with and without the attester trusted', async () => {
    const key = await pinnedKey(20)
    const attester = { did: 'did:web:attester.test' as const, key: key.did() }
    const attested = await received(await mailtoChain(key.withDID('did:web:attester.test')))
    const bare = await received(await mailtoChain(key.withDID('did:web:attester.test'), false))
    expect(needsValidator(attested)).toBe(true)
    expect(needsValidator(bare)).toBe(true)
    const cases: [API.Delegation, typeof attester | undefined, string][] = [
      [attested, attester, 'ok'],
      [attested, undefined, 'Unauthorized'],
      [bare, attester, 'Unauthorized'],
    ]
    for (const [d, trusted, expected] of cases) {
      const byUcanto = await findGrants(P.space.did(), d, { service: P.service, principal: Verifier, attester: trusted })
      const byService = await authorizeAppend(await invocation(d), { service: P.service, grants: createGrantCache(), ...(trusted && { attester: trusted }) })
      expect(byUcanto.error?.name ?? 'ok').toBe(expected)
      expect(byService.error?.name ?? 'ok').toBe(expected)
    }
  })

  test('revoked: the revocation query of the direct path equals ucanto\'s, so a revocation by a principal in the chain refuses the append', async () => {
    const proof = await spaceTo(P.agent)
    const d = await toService([proof])
    await agree(d, 'ok')
    for (const [cid, scope] of [
      [proof.cid.toString(), P.space.did()],
      [proof.cid.toString(), P.agent.did()],
      [d.cid.toString(), P.space.did()],
      [d.cid.toString(), P.agent.did()],
    ] as const) {
      const revocations = createMemoryRevocations()
      revocations.add(cid, scope)
      const out = await authorizeAppend(await invocation(d), { service: P.service, grants: createGrantCache(), revocations })
      expect(out.error?.name).toBe('Revoked')
    }
    const stranger = createMemoryRevocations()
    stranger.add(proof.cid.toString(), P.mallory.did())
    expect((await authorizeAppend(await invocation(d), { service: P.service, grants: createGrantCache(), revocations: stranger })).ok).toBeDefined()
  })
})

describe('the verified-UCAN cache', () => {
  test('bounds: positive integers only; at most maxEntries and maxBytes, least recently used out', async () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Infinity]) {
      expect(() => createVerifiedUcanCache({ maxEntries: bad })).toThrow(RangeError)
      expect(() => createVerifiedUcanCache({ maxBytes: bad })).toThrow(RangeError)
    }
    const ucans = await Promise.all([1, 2, 3].map((i) => spaceTo(P.agent, { exp: T + 100 + i })))
    const [a, b, c] = ucans as [API.Delegation, API.Delegation, API.Delegation]
    const byCount = createVerifiedUcanCache({ maxEntries: 2 })
    byCount.add(a)
    byCount.add(b)
    expect(byCount.has(a)).toBe(true) // a is now the most recent
    byCount.add(c)
    expect([byCount.has(a), byCount.has(b), byCount.has(c), byCount.size]).toEqual([true, false, true, 2])
    const one = 2 * a.cid.toString().length + 96
    // Three quarters of the bytes (2.25 entries' worth) for proofs, the rest (less than one) for delegations.
    const byBytes = createVerifiedUcanCache({ maxBytes: 3 * one })
    byBytes.add(a)
    byBytes.add(b)
    byBytes.add(b) // counted once
    expect(byBytes.bytes).toBe(2 * one)
    byBytes.add(c)
    expect([byBytes.has(a), byBytes.has(b), byBytes.has(c), byBytes.bytes]).toEqual([false, true, true, 2 * one])
  })

  test('a flood of distinct delegations stays in its quarter: the proofs every append reuses are not pushed out', async () => {
    const proof = await spaceTo(P.agent)
    const cache = createVerifiedUcanCache({ maxEntries: 8 }) // 2 for delegations, 6 for proofs
    cache.add(proof)
    const flood = await Promise.all(Array.from({ length: 10 }, (_, i) => toService([proof], { exp: T + 500 + i })))
    for (const d of flood) cache.add(d, { delegation: true })
    expect(cache.has(proof)).toBe(true)
    expect(cache.size).toBe(3)
    expect(flood.map((d) => cache.has(d))).toEqual([...Array(8).fill(false), true, true])
    // Added as a delegation, then used as a proof: it moves to the proofs' share; a proof added again as a delegation stays a proof.
    const both = flood[9] as API.Delegation
    cache.add(both)
    cache.add(proof, { delegation: true })
    for (const d of flood.slice(0, 4)) cache.add(d, { delegation: true })
    expect([cache.has(both), cache.has(proof)]).toEqual([true, true])
    // Through the chain check: the delegation goes to the delegations' share, its proof to the proofs'.
    const small = createVerifiedUcanCache({ maxEntries: 4 }) // 1 and 3
    for (const d of flood.slice(0, 3)) {
      const r = await received(d, small)
      expect((await checkChain(P.space.did(), r, { service: P.service, principal: createPrincipalParser(), now: T, ucans: small })).ok).toBeDefined()
    }
    expect(small.size).toBe(2)
    expect([small.has(proof), small.has(flood[2] as API.Delegation), small.has(flood[1] as API.Delegation)]).toEqual([true, true, false])
  })

  test('a hit needs the same bytes: a block whose bytes do not hash to the cached CID is not a hit', async () => {
    const a = await spaceTo(P.agent)
    const cache = createVerifiedUcanCache()
    cache.add(a)
    expect(cache.has(a)).toBe(true)
    const forged = Object.create(a, { root: { value: { ...a.root, bytes: new Uint8Array([...a.root.bytes, 0]) } } }) as API.Delegation
    expect(cache.has(forged)).toBe(false)
  })

  test('only UCANs found canonical and validly signed are cached; a forged one is verified (and refused) every time', async () => {
    const cache = createVerifiedUcanCache()
    const forged = await toService([await spaceTo(P.agent, { issuer: impostor(P.space, P.mallory) })])
    for (let i = 0; i < 2; i++) {
      const r = await received(forged, cache)
      expect((await checkChain(P.space.did(), r, { service: P.service, principal: createPrincipalParser(), now: T, ucans: cache })).error?.name).toBe('InvalidSignature')
    }
    // The delegation itself verified (its signature is good) and was cached; the forged proof was not.
    expect(cache.size).toBe(1)
    // Without a content check first, nothing is cached.
    const unchecked = (await parseDelegation(await formatDelegation(await toService([await spaceTo(P.agent, { exp: T + 5 })])))).ok!
    const fresh = createVerifiedUcanCache()
    expect((await checkChain(P.space.did(), unchecked, { service: P.service, principal: createPrincipalParser(), now: T, ucans: fresh })).ok).toBeDefined()
    expect(fresh.size).toBe(0)
  })

  test('a warm cache verifies only the new delegation: one signature per append', async () => {
    let verified = 0
    const inner = createPrincipalParser()
    const counting: API.PrincipalParser = {
      parse(did) {
        const v = inner.parse(did)
        return { did: () => v.did(), toDIDKey: () => v.toDIDKey(), withDID: (id: API.DID) => v.withDID(id), verify: (p: Uint8Array, s: API.Signature) => (verified++, v.verify(p, s)) } as unknown as API.Verifier
      },
    }
    const cache = createVerifiedUcanCache()
    const proof = await spaceTo(P.agent)
    const first = await received(await toService([proof]), cache)
    expect((await checkChain(P.space.did(), first, { service: P.service, principal: counting, now: T, ucans: cache })).ok).toBeDefined()
    expect(verified).toBe(2) // the delegation and its proof, once each across the three capabilities
    verified = 0
    const second = await received(await toService([proof], { exp: T + 1234 }), cache)
    expect((await checkChain(P.space.did(), second, { service: P.service, principal: counting, now: T, ucans: cache })).ok).toBeDefined()
    expect(verified).toBe(1) // only the new Agent→Service delegation
  })
})

describe('what the chain check hands on', () => {
  test('a UCAN on several paths keeps every path\'s principals in its revocation query (a revocation upstream on any path counts)', async () => {
    // The same Agent→Service delegation reaches the space through Alice on one path and through a
    // second intermediary (spaceB's key, "Bob") on the other.
    const spaceToAlice = await spaceTo(P.alice)
    const aliceToAgent = await delegate({ issuer: P.alice, audience: P.agent, capabilities: caps(P.space.did()), proofs: [spaceToAlice], expiration: T + 3600 })
    const spaceToBob = await spaceTo(P.spaceB)
    const bobToAgent = await delegate({ issuer: P.spaceB, audience: P.agent, capabilities: caps(P.space.did()), proofs: [spaceToBob], expiration: T + 3600 })
    const top = await toService([aliceToAgent, bobToAgent])
    const into: RevocationQuery = new Map()
    addPathToRevocationQuery([top, aliceToAgent, spaceToAlice], into)
    addPathToRevocationQuery([top, bobToAgent, spaceToBob], into)
    const scope = into.get(top.cid.toString())
    expect(scope).toBeDefined()
    for (const did of [P.agent.did(), P.service.did(), P.alice.did(), P.spaceB.did(), P.space.did()]) expect(scope?.has(did), did).toBe(true)
  })

  test("the service's own DID as the space is granted outright with no path, as ucanto's claim grants it", async () => {
    const r = await received(await toService([await spaceTo(P.agent)]))
    const out = await checkChain(P.service.did() as never, r, { service: P.service, principal: createPrincipalParser(), now: T })
    expect(out.error).toBeUndefined()
    expect(out.ok).toEqual([[], [], []])
  })
})
