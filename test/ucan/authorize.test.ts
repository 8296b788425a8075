/**
 * authorize.ts below the service: checkInvocation without the service's options, the per-object
 * signature memo, the attester's DID resolver, authorizationFailure's reading of ucanto's error trees, and the
 * grant cache's bounds. The checks through the real service are in append.test.ts.
 */
import { beforeAll, describe, expect, test } from 'vitest'
import type { API } from '@ucanto/core'
import { Verifier } from '@ucanto/principal'
import { Delegation, delegate } from '@ucanto/core'
import { sha256 } from 'multiformats/hashes/sha2'
import * as Link from 'multiformats/link'
import {
  TlogAppend,
  attesterTrust,
  authorizeAppend,
  authorizeCreate,
  delegateAgentToService,
  delegateSpaceToAgent,
  formatDelegation,
  isReservedSpace,
  checkInvocation,
  authorizationFailure,
  createGrantCache,
  verifyInvocationSignature,
} from '../../src/ucan/index.js'
import { type Principals, now, pinnedKey, principals } from './helpers.js'

let P: Principals
beforeAll(async () => {
  P = await principals()
})

const invocation = (fields: { issuer?: API.Signer; expiration?: number } = {}) =>
  TlogAppend.invoke({
    issuer: fields.issuer ?? P.agent,
    audience: P.service,
    with: P.space.did(),
    nb: { data: 'AQ==', delegation: 'x' },
    expiration: fields.expiration ?? now() + 60,
    nonce: Math.random().toString(36),
  }).delegate()

describe('checkInvocation (check (1)) on its own', () => {
  test('without maxLifetime an invocation needs no exp; with it, no exp → InvalidExpiry', async () => {
    // Guards `maxLifetime !== undefined` in both lifetime checks: the bound is the caller's choice.
    const inv = await invocation({ expiration: Infinity })
    const options = { audience: P.service.did(), principal: Verifier, now: now() }
    expect(await checkInvocation(inv, options)).toEqual({ ok: {} })
    expect((await checkInvocation(inv, { ...options, maxLifetime: 60 })).error?.name).toBe('InvalidExpiry')
    // And a far exp is fine without a bound.
    expect(await checkInvocation(await invocation({ expiration: now() + 10 ** 6 }), options)).toEqual({ ok: {} })
  })

  test('a proof embedded in the invocation must match its CID; an honest proof passes', async () => {
    // Guards the content-addressing check of the invocation's own proofs (they authorize ucan/revoke).
    const grant = await delegate({ issuer: P.space, audience: P.agent, capabilities: [{ can: 'ucan/revoke', with: P.space.did() }], expiration: now() + 600 })
    const fakeCid = Link.create(0x71, await sha256.digest(new TextEncoder().encode('not the grant')))
    const relabeled = Delegation.create({ root: { cid: fakeCid, bytes: grant.root.bytes } as never, blocks: new Map() })
    const withProof = (proof: API.Delegation) =>
      TlogAppend.invoke({ issuer: P.agent, audience: P.service, with: P.space.did(), nb: { data: 'AQ==', delegation: 'x' }, expiration: now() + 60, proofs: [proof] }).delegate()
    const options = { audience: P.service.did(), principal: Verifier, now: now() }
    const out = await checkInvocation(await withProof(relabeled), options)
    expect([out.error?.name, out.error?.message]).toEqual(['InvalidSignature', 'a proof of the invocation does not match its CID'])
    expect(await checkInvocation(await withProof(grant), options)).toEqual({ ok: {} })
  })

  test('an issuer whose DID the principal parser cannot read → InvalidSignature saying so', async () => {
    // Guards the principal.parse try/catch before the signature check.
    const webIssuer = (await pinnedKey(30)).withDID('did:web:agent.example')
    const out = await checkInvocation(await invocation({ issuer: webIssuer }), { audience: P.service.did(), principal: Verifier, now: now() })
    expect(out.error?.name).toBe('InvalidSignature')
    expect(out.error?.message).toContain('cannot verify signatures of did:web:agent.example')
  })
})

describe('verifyInvocationSignature answers per principal parser, for the same decoded object', () => {
  test('a parser that refuses every signature does not poison the answer of another parser, nor the reverse', async () => {
    const inv = await invocation()
    const refuseAll: API.PrincipalParser = {
      parse: (did) => ({ ...Verifier.parse(did), did: () => did, verify: async () => false }) as unknown as API.Verifier,
    }
    expect(await verifyInvocationSignature(inv, refuseAll)).toBe(false)
    expect(await verifyInvocationSignature(inv, Verifier)).toBe(true)
    expect(await verifyInvocationSignature(inv, refuseAll)).toBe(false)
    expect(await verifyInvocationSignature(inv, Verifier)).toBe(true)
  })

  test('an issuer the parser cannot read is false, never a throw', async () => {
    const inv = await invocation({ issuer: (await pinnedKey(30)).withDID('did:web:agent.example') })
    expect(await verifyInvocationSignature(inv, Verifier)).toBe(false)
  })
})

describe('attesterTrust', () => {
  test('resolves only the pinned attester DID, to its pinned key; any other DID is a named resolution error', async () => {
    const key = await pinnedKey(20)
    const trust = await attesterTrust(P.service, { did: 'did:web:attester.test', key: key.did() })
    expect(trust.proofs).toHaveLength(1)
    const [proof] = trust.proofs as API.Delegation[]
    expect(proof?.issuer.did()).toBe(P.service.did())
    expect(proof?.audience.did()).toBe('did:web:attester.test')
    expect(proof?.capabilities).toEqual([{ can: 'ucan/attest', with: P.service.did() }])
    expect(trust.resolveDIDKey?.('did:web:attester.test')).toEqual({ ok: [key.did()] })
    const other = trust.resolveDIDKey?.('did:web:evil.test')
    expect(other?.ok).toBeUndefined()
    const error = other?.error as unknown as { name: string; message: string; did: string; describe(): string; toJSON(): unknown }
    expect(error.name).toBe('DIDKeyResolutionError')
    expect(error.did).toBe('did:web:evil.test')
    expect(error.message).toBe("Unable to resolve 'did:web:evil.test' key")
    expect(error.describe()).toBe(error.message)
    expect(error.toJSON()).toEqual({ name: 'DIDKeyResolutionError', message: error.message })
  })

  test('no attester: no proofs, no resolver', async () => {
    expect(await attesterTrust(P.service, undefined)).toEqual({})
  })
})

describe('authorizationFailure: the most specific name found in a ucanto failure tree', () => {
  const node = (name: string, children: Record<string, unknown> = {}) => ({ name, ...children })
  const d = (cid: string) => ({ cid: { toString: () => cid } })

  test('precedence Revoked > InvalidSignature > Expired > NotValidBefore > Unauthorized, found under every child key', () => {
    const all = node('Unauthorized', {
      causes: [node('InvalidClaim', { failedProofs: [node('NotValidBefore', { delegation: d('bafyN') })] })],
      cause: node('X', { invalidProofs: [node('Expired', { delegation: d('bafyE') })] }),
      delegationErrors: [node('InvalidSignature', { delegation: d('bafyS') })],
      info: node('Y', { causes: [node('Revoked', { delegation: d('bafyR') })] }),
    })
    const r = authorizationFailure(all as never, 'upload/add')
    expect([r.name, r.message]).toEqual(['Revoked', 'UCAN bafyR has been revoked'])
    delete (all as Record<string, unknown>).info
    expect(authorizationFailure(all as never, 'upload/add').message).toBe('UCAN bafyS has an invalid signature')
    delete (all as Record<string, unknown>).delegationErrors
    expect(authorizationFailure(all as never, 'upload/add').message).toBe('UCAN bafyE has expired')
    delete (all as Record<string, unknown>).cause
    expect(authorizationFailure(all as never, 'upload/add').message).toBe('UCAN bafyN is not valid yet')
    delete (all as Record<string, unknown>).causes
    const plain = authorizationFailure(all as never, 'upload/add')
    expect([plain.name, plain.message]).toEqual(['Unauthorized', 'delegation does not grant upload/add on the space'])
  })

  test('the first node of a name gives the CID', () => {
    const tree = node('Unauthorized', { causes: [node('Expired', { delegation: d('first') }), node('Expired', { delegation: d('second') })] })
    expect(authorizationFailure(tree as never, 'x').message).toBe('UCAN first has expired')
  })

  test('cycles, a throwing cause getter and a 100,000-deep tree neither throw nor hang', () => {
    const cyclic: Record<string, unknown> = node('Unauthorized')
    cyclic.causes = [cyclic, node('Expired', { cause: cyclic })]
    expect(authorizationFailure(cyclic as never, 'x').name).toBe('Expired')

    const throwing = node('Unauthorized')
    Object.defineProperty(throwing, 'cause', {
      get() {
        throw new Error('getter')
      },
    })
    expect(authorizationFailure(throwing as never, 'x').name).toBe('Unauthorized')

    let deep: Record<string, unknown> = node('Revoked')
    for (let i = 0; i < 100_000; i++) deep = node('Unauthorized', { cause: deep })
    // The Revoked leaf is past the depth bound (64): not reached, and no stack overflow.
    expect(authorizationFailure(deep as never, 'x').name).toBe('Unauthorized')
    let shallow: Record<string, unknown> = node('Revoked')
    for (let i = 0; i < 64; i++) shallow = node('Unauthorized', { cause: shallow })
    expect(authorizationFailure(shallow as never, 'x').name).toBe('Revoked')
  })

  test('null children are skipped; a node past depth 64 is not read; an inherited cause getter is followed; a delegation without a CID', () => {
    expect(authorizationFailure(node('Unauthorized', { cause: null, causes: [null, node('Expired', { delegation: d('e') })] }) as never, 'x').message).toBe('UCAN e has expired')
    let past: Record<string, unknown> = node('Revoked')
    for (let i = 0; i < 100; i++) past = node('Unauthorized', { cause: past })
    expect(authorizationFailure(past as never, 'x').name).toBe('Unauthorized')
    class Failure {
      name = 'Unauthorized'
      get cause() {
        return node('Revoked', { delegation: d('r') })
      }
    }
    expect(authorizationFailure(new Failure() as never, 'x').message).toBe('UCAN r has been revoked')
    expect(authorizationFailure(node('Unauthorized', { cause: node('Expired', { delegation: {} }) }) as never, 'x').message).toBe('UCAN  has expired')
  })

  test('the depth bound holds through array children too (causes, failedProofs, …)', () => {
    // Guards `depth + 1` for array children: a chain of one-element `causes` lists 100 deep hides
    // its Revoked leaf past depth 64, exactly like a chain of `cause` objects; 64 deep it is found.
    const chain = (n: number) => {
      let t: Record<string, unknown> = node('Revoked', { delegation: d('r') })
      for (let i = 0; i < n; i++) t = node('Unauthorized', { causes: [t] })
      return t
    }
    expect(authorizationFailure(chain(100) as never, 'x').name).toBe('Unauthorized')
    expect(authorizationFailure(chain(64) as never, 'x').name).toBe('Revoked')
  })

  test('at most about 10,000 nodes are read, however wide the tree', () => {
    let reads = 0
    const counted = () => {
      const o = {}
      Object.defineProperty(o, 'name', {
        enumerable: true,
        get() {
          reads++
          return 'Unauthorized'
        },
      })
      return o
    }
    const wide = node('Unauthorized', { causes: Array.from({ length: 30_000 }, counted) })
    expect(authorizationFailure(wide as never, 'x').name).toBe('Unauthorized')
    expect(reads).toBeGreaterThan(9_000)
    expect(reads).toBeLessThanOrEqual(2 * 10_001)
  })
})

describe('createGrantCache bounds', () => {
  const auth = (exp: number) => ({ delegation: { expiration: Infinity }, proofs: [{ delegation: { expiration: exp }, proofs: [] }] }) as unknown as API.Authorization

  test('maxEntries must be a positive integer', () => {
    for (const maxEntries of [0, -1, 1.5, Number.NaN, Infinity]) expect(() => createGrantCache({ maxEntries })).toThrow(new RangeError('maxEntries must be a positive integer'))
    expect(() => createGrantCache({ maxEntries: 1 })).not.toThrow()
  })

  test('holds exactly maxEntries; a get refreshes an entry, so the least recently used goes first', () => {
    const cache = createGrantCache({ now: () => 0, maxEntries: 2 })
    cache.set('a', [auth(10)])
    cache.set('b', [auth(10)])
    expect(cache.get('a')).toBeDefined()
    expect(cache.get('b')).toBeDefined()
    expect(cache.get('a')).toBeDefined() // a is now the most recent
    cache.set('c', [auth(10)])
    expect(cache.get('b')).toBeUndefined()
    expect(cache.get('a')).toBeDefined()
    expect(cache.get('c')).toBeDefined()
    // Setting an existing key again does not take a second place.
    cache.set('c', [auth(10)])
    expect(cache.get('a')).toBeDefined()
  })

  test('an entry with no expiring proof lives on; the system clock is the default', () => {
    const cache = createGrantCache()
    cache.set('k', [{ delegation: { expiration: Infinity }, proofs: [] } as unknown as API.Authorization])
    expect(cache.get('k')).toHaveLength(1)
    cache.set('past', [auth(now() - 1)])
    expect(cache.get('past')).toBeUndefined()
    cache.set('future', [auth(now() + 3600)])
    expect(cache.get('future')).toHaveLength(1)
  })
})

describe('authorizeAppend and authorizeCreate called directly (no service in front)', () => {
  let spaceToAgent: API.Delegation
  let delegation: string
  beforeAll(async () => {
    spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() + 3600 })
    delegation = await formatDelegation(await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], expiration: now() + 3600 }))
  })
  const make = (capabilities: Record<string, unknown>[]) =>
    delegate({ issuer: P.agent, audience: P.service, capabilities: capabilities as unknown as API.Capabilities, expiration: now() + 60 }) as unknown as Promise<API.Invocation>

  test('the capability must be exactly one, of the handler\'s ability (the service routes by ability; a direct caller may not)', async () => {
    const append = { can: 'tlog/append', with: P.space.did(), nb: { data: 'AQ==', delegation } }
    const create = { can: 'tlog/create', with: P.space.did(), nb: { delegation } }
    const two = await authorizeAppend(await make([append, append]), { service: P.service })
    expect([two.error?.name, two.error?.message]).toEqual(['InvalidCapability', 'invocation must carry exactly one capability'])
    const other = await authorizeAppend(await make([create]), { service: P.service })
    expect([other.error?.name, other.error?.message]).toEqual(['InvalidCapability', 'expected tlog/append, got tlog/create'])
    const otherCreate = await authorizeCreate(await make([append]), { service: P.service })
    expect([otherCreate.error?.name, otherCreate.error?.message]).toEqual(['InvalidCapability', 'expected tlog/create, got tlog/append'])
    const badNb = await authorizeCreate(await make([{ ...create, nb: { delegation: 1 } }]), { service: P.service })
    expect([badNb.error?.name, badNb.error?.message]).toEqual(['InvalidCapability', 'nb must be { delegation: string }'])
  })

  test('without a grant cache both authorize; with one, the chain is verified once', async () => {
    const append = await authorizeAppend(await make([{ can: 'tlog/append', with: P.space.did(), nb: { data: 'AQ==', delegation } }]), { service: P.service })
    expect(append.error, JSON.stringify(append.error)).toBeUndefined()
    expect(append.ok?.entry).toEqual(new Uint8Array([1]))
    const create = await authorizeCreate(await make([{ can: 'tlog/create', with: P.space.did(), nb: { delegation } }]), { service: P.service })
    expect(create.ok?.space).toBe(P.space.did())
    // A counting parser: the second authorization with the same cache verifies only the invocation.
    let verified = 0
    const counting: API.PrincipalParser = {
      parse(did) {
        const inner = Verifier.parse(did)
        return { did: () => inner.did(), toDIDKey: () => inner.toDIDKey(), withDID: (id: API.DID) => inner.withDID(id), verify: (p: Uint8Array, s: API.Signature) => (verified++, inner.verify(p, s)) } as unknown as API.Verifier
      },
    }
    const grants = createGrantCache()
    const invocation = () => make([{ can: 'tlog/append', with: P.space.did(), nb: { data: 'AQ==', delegation } }])
    expect((await authorizeAppend(await invocation(), { service: P.service, principal: counting, grants })).ok).toBeDefined()
    const cold = verified
    expect(cold).toBeGreaterThanOrEqual(3) // the invocation, Agent→Service, Space→Agent
    verified = 0
    expect((await authorizeAppend(await invocation(), { service: P.service, principal: counting, grants })).ok).toBeDefined()
    expect(verified).toBe(1) // only the new invocation's own signature
  })

  test('signatureVerified: the caller\'s verdict on the invocation signature is used, not re-decided', async () => {
    // Guards the forwarding of `signatureVerified` to checkInvocation: the service verifies first
    // (to charge a verified issuer) and a `false` it found must refuse, though the bytes verify.
    const append = () => make([{ can: 'tlog/append', with: P.space.did(), nb: { data: 'AQ==', delegation } }])
    const refused = await authorizeAppend(await append(), { service: P.service, signatureVerified: false })
    expect([refused.error?.name, refused.error?.message]).toEqual(['InvalidSignature', 'invocation signature does not verify'])
    const create = await authorizeCreate(await make([{ can: 'tlog/create', with: P.space.did(), nb: { delegation } }]), { service: P.service, signatureVerified: false })
    expect(create.error?.name).toBe('InvalidSignature')
    expect((await authorizeAppend(await append(), { service: P.service, signatureVerified: true })).ok?.entry).toEqual(new Uint8Array([1]))
  })

  test('reservedSpaces: a listed DID is refused as a space, like the service\'s own', async () => {
    const witness = await pinnedKey(40)
    expect(isReservedSpace(witness.did(), P.service, new Set([witness.did()]))).toBe(true)
    expect(isReservedSpace(P.service.did(), P.service, undefined)).toBe(true)
    expect(isReservedSpace(P.space.did(), P.service, new Set([witness.did()]))).toBe(false)
    expect(isReservedSpace(P.space.did(), P.service, undefined)).toBe(false)
    const out = await authorizeAppend(await make([{ can: 'tlog/append', with: witness.did(), nb: { data: 'AQ==', delegation } }]), {
      service: P.service,
      reservedSpaces: new Set([witness.did()]),
    })
    expect([out.error?.name, out.error?.message]).toEqual(['ReservedSpace', 'this DID belongs to the service itself and is not a space'])
  })
})
