/**
 * The verified-UCAN cache (src/ucan/verified-ucans.ts) and `markPreverified`: the two shares and
 * their bounds, what is counted, and that only dag-cbor blocks under sha2-256 CIDs (by CID string:
 * only the canonical base32 spelling) are ever held or noted. The cache as the chain check uses it
 * is tested in chain.test.ts; what a CID vouched for by another thread covers, in preverify.test.ts.
 */
import { beforeAll, describe, expect, test } from 'vitest'
import { Delegation, delegate } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { CID } from 'multiformats/cid'
import { base58btc } from 'multiformats/bases/base58'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { VERIFIED_UCAN_ENTRY_OVERHEAD, checkContentAddressed, createVerifiedUcanCache, isPreverified, markPreverified } from '../../src/ucan/index.js'
import { type Principals, now, principals } from './helpers.js'

let P: Principals
beforeAll(async () => {
  P = await principals()
})

/** `n` distinct Space→Agent UCANs (a nonce each). */
const ucans = (n: number): Promise<API.Delegation[]> =>
  Promise.all(
    Array.from({ length: n }, () =>
      delegate({ issuer: P.space, audience: P.agent, capabilities: [{ can: 'tlog/append', with: P.space.did() }], expiration: now() + 3600, nonce: Math.random().toString(36) }),
    ),
  )

/** Bytes one entry is counted as (a CIDv1 base32 string is 59 characters). */
const cost = (u: API.Delegation): number => 2 * u.cid.toString().length + VERIFIED_UCAN_ENTRY_OVERHEAD

/** The same block (`ucan`'s bytes) under another CID: `Delegation.create` does not re-hash. */
const reroot = (ucan: API.Delegation, cid: CID): API.Delegation => Delegation.create({ root: { cid, bytes: ucan.root.bytes } as never })

/** CIDs over `bytes`' sha2-256 digest that are not dag-cbor/sha2-256: raw codec, and dag-cbor claiming sha2-512 (0x13). */
async function oddCids(bytes: Uint8Array): Promise<{ raw: CID; sha512: CID }> {
  const digest = await sha256.digest(bytes)
  return { raw: CID.createV1(0x55, digest), sha512: CID.createV1(0x71, Digest.create(0x13, digest.digest)) }
}

describe('the verified-UCAN cache: shares and bounds', () => {
  test('the byte bound is inclusive: shares holding exactly their bound in bytes keep every entry; bytes count both shares', async () => {
    const [p1, p2, p3, d] = (await ucans(4)) as [API.Delegation, API.Delegation, API.Delegation, API.Delegation]
    const one = cost(p1)
    const cache = createVerifiedUcanCache({ maxBytes: 4 * one }) // one entry's worth for delegations, three for proofs
    for (const p of [p1, p2, p3]) cache.add(p)
    cache.add(d, { delegation: true })
    expect([cache.size, cache.bytes]).toEqual([4, 4 * one])
    expect([p1, p2, p3, d].map((u) => cache.has(u))).toEqual([true, true, true, true])
  })

  test('proofs get the entries left after the delegations’ quarter: maxEntries 8 keeps 6 proofs, least recently used out', async () => {
    const proofs = await ucans(7)
    const cache = createVerifiedUcanCache({ maxEntries: 8 })
    for (const p of proofs) cache.add(p)
    expect(cache.size).toBe(6)
    expect(proofs.map((p) => cache.has(p))).toEqual([false, true, true, true, true, true, true])
  })

  test('a UCAN held as a proof and added again as a delegation is held once, as a proof', async () => {
    const [p] = (await ucans(1)) as [API.Delegation]
    const cache = createVerifiedUcanCache()
    cache.add(p)
    cache.add(p, { delegation: true })
    cache.addCid(p.cid.toString(), { delegation: true })
    expect([cache.size, cache.bytes]).toEqual([1, cost(p)])
  })

  test('addCid files a CID in the delegations’ share only when told `delegation: true`', async () => {
    const [d1, d2, p1, p2] = (await ucans(4)) as [API.Delegation, API.Delegation, API.Delegation, API.Delegation]
    const cache = createVerifiedUcanCache({ maxEntries: 4 }) // 1 for delegations, 3 for proofs
    cache.addCid(d1.cid.toString(), { delegation: true })
    cache.addCid(d2.cid.toString(), { delegation: true })
    expect([cache.size, cache.has(d1), cache.has(d2)]).toEqual([1, false, true])
    cache.addCid(p1.cid.toString())
    cache.addCid(p2.cid.toString(), { delegation: false })
    expect([cache.size, cache.has(p1), cache.has(p2), cache.has(d2)]).toEqual([3, true, true, true])
  })
})

describe('only dag-cbor blocks under sha2-256 CIDs', () => {
  test('add keeps nothing under a raw-codec CID or a non-sha2-256 multihash code (even over the right digest)', async () => {
    const [a, b] = (await ucans(2)) as [API.Delegation, API.Delegation]
    const cache = createVerifiedUcanCache()
    cache.add(reroot(a, (await oddCids(a.root.bytes)).raw))
    cache.add(reroot(b, (await oddCids(b.root.bytes)).sha512), { delegation: true })
    expect([cache.size, cache.bytes]).toEqual([0, 0])
  })

  test('addCid keeps only a canonical (base32) dag-cbor/sha2-256 CID string', async () => {
    const [a] = (await ucans(1)) as [API.Delegation]
    const { raw, sha512 } = await oddCids(a.root.bytes)
    const cache = createVerifiedUcanCache()
    for (const delegation of [false, true]) {
      cache.addCid(raw.toString(), { delegation })
      cache.addCid(sha512.toString(), { delegation })
      cache.addCid(a.cid.toString(base58btc), { delegation })
    }
    expect(CID.parse(a.cid.toString(base58btc)).equals(a.cid)).toBe(true)
    expect([cache.size, cache.bytes]).toEqual([0, 0])
    cache.addCid(a.cid.toString())
    expect(cache.size).toBe(1)
  })

  test('markPreverified notes nothing under a raw-codec CID or a non-sha2-256 multihash code over the right digest', async () => {
    const [a] = (await ucans(1)) as [API.Delegation]
    const { raw, sha512 } = await oddCids(a.root.bytes)
    for (const odd of [reroot(a, raw), reroot(a, sha512)]) {
      expect(markPreverified(odd)).toBe(false)
      expect(isPreverified(odd)).toBe(false)
    }
    expect(markPreverified(a)).toBe(true)
  })

  test('markPreverified and checkContentAddressed refuse the right block under a CID written with a non-minimal multihash varint (a second CID string)', async () => {
    // `01 71 92 00 20 …`: 0x12 as two varint bytes. multiformats keeps the multihash bytes it
    // read, so this CID names the same digest with another string — another replay-guard and
    // revocation key for the same invocation, were it trusted. Guards sameBytes' CID-form check.
    const [a] = (await ucans(1)) as [API.Delegation]
    const digest = (await sha256.digest(a.root.bytes)).digest
    const padded = CID.decode(new Uint8Array([0x01, 0x71, 0x92, 0x00, 0x20, ...digest]))
    expect(padded.multihash.code).toBe(0x12)
    expect(padded.toString()).not.toBe(a.cid.toString())
    const odd = reroot(a, padded)
    expect(markPreverified(odd)).toBe(false)
    expect(isPreverified(odd)).toBe(false)
    expect(await checkContentAddressed(odd, { proofs: false })).toBe(false)
    const cache = createVerifiedUcanCache()
    cache.addCid(a.cid.toString())
    expect(cache.has(odd)).toBe(false)
    expect(await checkContentAddressed(a, { proofs: false })).toBe(true)
  })
})
