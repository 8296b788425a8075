/**
 * revocation.ts on its own: the revocation query of an authorization path (whose revocations
 * count for which UCAN), the in-memory store, and the strict parser of revocation log records.
 * The same rules through the real service are in append.test.ts "(5)".
 */
import { describe, expect, test } from 'vitest'
import type { API } from '@ucanto/core'
import {
  InvalidRevocationRecord,
  MAX_REVOCATION_RECORD_SIZE,
  type RevocationRecord,
  RevocationScopeFull,
  createMemoryRevocations,
  formatRevocationRecord,
  noRevocations,
  parseRevocationRecord,
  toRevocationQuery,
} from '../../src/ucan/index.js'

/** A stand-in authorization path node: only the fields toRevocationQuery reads. */
function auth(cid: string, issuer: string, audience: string, proofs: API.Authorization[] = []): API.Authorization {
  return {
    delegation: { cid: { toString: () => cid }, issuer: { did: () => issuer }, audience: { did: () => audience } },
    proofs,
  } as unknown as API.Authorization
}

const sorted = (query: Map<string, Set<string>>) => Object.fromEntries([...query].map(([cid, scope]) => [cid, [...scope].sort()]))

describe('toRevocationQuery: a UCAN\'s revocation scope is its own principals and every principal above it', () => {
  test('a chain: each UCAN gets its issuer, audience and those of every proof above it, none from below', () => {
    // agent→service, proved by alice→agent, proved by space→alice.
    const path = auth('A2S', 'did:agent', 'did:service', [auth('L2A', 'did:alice', 'did:agent', [auth('S2L', 'did:space', 'did:alice')])])
    const query = toRevocationQuery(path)
    expect(sorted(query)).toEqual({
      A2S: ['did:agent', 'did:alice', 'did:service', 'did:space'],
      L2A: ['did:agent', 'did:alice', 'did:space'],
      S2L: ['did:alice', 'did:space'],
    })
  })

  test('a UCAN reached along two paths gets the principals above it on both (merged, not overwritten)', () => {
    // The same agent→service is proved once through alice and once through bob (two claims).
    const viaAlice = auth('A2S', 'did:agent', 'did:service', [auth('L2A', 'did:alice', 'did:agent')])
    const viaBob = auth('A2S', 'did:agent', 'did:service', [auth('B2A', 'did:bob', 'did:agent')])
    const query = new Map<string, Set<API.DID>>()
    expect(toRevocationQuery(viaAlice, query)).toBe(query)
    toRevocationQuery(viaBob, query)
    expect(sorted(query)).toEqual({
      A2S: ['did:agent', 'did:alice', 'did:bob', 'did:service'],
      L2A: ['did:agent', 'did:alice'],
      B2A: ['did:agent', 'did:bob'],
    })
  })
})

describe('createMemoryRevocations', () => {
  test('a revocation counts only for the principals the query lists for that UCAN; several scopes per UCAN', async () => {
    const store = createMemoryRevocations()
    expect(await store.findRevoked(new Map([['X', new Set<API.DID>(['did:a:1'])]]))).toBeUndefined()
    store.add('X', 'did:a:1')
    store.add('X', 'did:a:2')
    store.add('X', 'did:a:2') // idempotent
    expect(await store.findRevoked(new Map([['X', new Set<API.DID>(['did:a:1'])]]))).toBe('X')
    expect(await store.findRevoked(new Map([['X', new Set<API.DID>(['did:a:2'])]]))).toBe('X')
    expect(await store.findRevoked(new Map([['X', new Set<API.DID>(['did:a:3'])]]))).toBeUndefined()
    // Revoked by did:a:1, but the query for Y lists did:a:1: it is X that must match.
    expect(await store.findRevoked(new Map([['Y', new Set<API.DID>(['did:a:1'])]]))).toBeUndefined()
    // Found past an unrevoked UCAN earlier in the query.
    expect(
      await store.findRevoked(
        new Map([
          ['Y', new Set<API.DID>(['did:a:1'])],
          ['X', new Set<API.DID>(['did:a:9', 'did:a:2'])],
        ]),
      ),
    ).toBe('X')
  })

  test('noRevocations finds nothing', async () => {
    expect(await noRevocations.findRevoked(new Map([['X', new Set<API.DID>(['did:a:1'])]]))).toBeUndefined()
  })
})

describe('parseRevocationRecord: one spelling per record, every field typed', () => {
  const good: RevocationRecord = { ucan: 'bafyA', scope: 'did:key:z6MkScope', revoker: 'did:key:z6MkRevoker', invocation: 'bafyI', time: 1_795_000_000 }
  const json = (fields: Record<string, unknown>) =>
    new TextEncoder().encode(JSON.stringify({ type: 'ucan/revoke', ...good, ...fields }))
  const refused = (bytes: Uint8Array, message: string) => {
    expect(() => parseRevocationRecord(bytes)).toThrow(InvalidRevocationRecord)
    expect(() => parseRevocationRecord(bytes)).toThrow(message)
  }

  test('each field of the wrong type (in canonical key order, so only the type check can refuse it)', () => {
    for (const fields of [
      { ucan: 5 },
      { scope: 5 },
      { revoker: 5 },
      { revoker: 'key:z6MkRevoker' },
      { invocation: 5 },
      { invocation: null },
      { time: 2 ** 53 },
      { time: -0.5 },
    ]) {
      refused(json(fields), 'record fields are missing or of the wrong type')
    }
  })

  test('a canonical record is read up to MAX_REVOCATION_RECORD_SIZE bytes, and refused past it', () => {
    const base = json({ ucan: '' }).length
    const exact = json({ ucan: 'b'.repeat(MAX_REVOCATION_RECORD_SIZE - base) })
    expect(exact.length).toBe(MAX_REVOCATION_RECORD_SIZE)
    expect(parseRevocationRecord(exact).ucan).toHaveLength(MAX_REVOCATION_RECORD_SIZE - base)
    refused(json({ ucan: 'b'.repeat(MAX_REVOCATION_RECORD_SIZE - base + 1) }), 'record too long')
  })

  test('invalid UTF-8 inside a string is refused as not UTF-8 (not decoded to U+FFFD)', () => {
    const bytes = Buffer.from(json({ ucan: 'bafyA' }))
    bytes[bytes.indexOf('bafyA') + 4] = 0xff
    refused(new Uint8Array(bytes), 'record is not UTF-8 JSON')
  })

  test('JSON that is not an object is refused by name', () => {
    for (const s of ['null', '5', '"x"', '[]']) refused(new TextEncoder().encode(s), 'record fields are missing or of the wrong type')
  })

  test('a record with the right types but another spelling → not in canonical form', () => {
    refused(new TextEncoder().encode(new TextDecoder().decode(json({})).replace('{"type"', '{ "type"')), 'record is not in canonical form')
  })

  test('the errors carry their names', () => {
    expect(new InvalidRevocationRecord('x').name).toBe('InvalidRevocationRecord')
    const full = new RevocationScopeFull('did:key:z6MkScope', 1000)
    expect([full.name, full.message, full.scope, full.limit]).toEqual(['RevocationScopeFull', 'did:key:z6MkScope has 1000 revocation records, its cap', 'did:key:z6MkScope', 1000])
  })

  test('round trip of the formatted bytes', () => {
    expect(parseRevocationRecord(formatRevocationRecord(good))).toEqual(good)
  })
})
