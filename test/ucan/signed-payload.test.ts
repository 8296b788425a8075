/**
 * signed-payload.ts writes the bytes a UCAN signature covers without dag-json: they must be
 * exactly the bytes ucanto's `UCAN.verifySignature` hands its verifier (captured here), for every
 * UCAN shape it accepts, and it must leave every other shape to ucanto (undefined).
 */
import { beforeAll, describe, expect, test } from 'vitest'
import { DID, Delegation, UCAN, delegate } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import type { API } from '@ucanto/core'
import { sha256 } from 'multiformats/hashes/sha2'
import * as Link from 'multiformats/link'
import {
  audienceOf,
  cachedDidKeyCount,
  cachedHeaderCount,
  createPrincipalParser,
  didsOf,
  formatDelegation,
  issuerOf,
  parseDelegation,
  signedPayload,
  verifyInvocationSignature,
  verifyUcanSignature,
} from '../../src/ucan/index.js'
import { type Principals, principals } from './helpers.js'

let P: Principals
beforeAll(async () => {
  P = await principals()
})

/** What ucanto verifies: the payload bytes dag-ucan passes to the verifier. */
async function ucantoPayload(ucan: API.Delegation): Promise<Uint8Array> {
  let seen: Uint8Array | undefined
  const capture = { did: () => ucan.issuer.did(), verify: (payload: Uint8Array) => ((seen = payload), true) } as unknown as API.Verifier
  await UCAN.verifySignature(ucan.data, capture)
  return seen as Uint8Array
}

/** `ucan` as the service receives it: archived, parsed (decoded from CBOR). */
async function decoded(ucan: API.Delegation): Promise<API.Delegation> {
  return (await parseDelegation(await formatDelegation(ucan))).ok as API.Delegation
}

const fields = (o: Partial<Parameters<typeof delegate>[0]> = {}) =>
  delegate({ issuer: P.agent, audience: P.service, capabilities: [{ can: 'upload/add', with: P.space.did() }] as unknown as API.Capabilities, expiration: 2_000_000_000, ...o })

/** A UCAN whose capability's caveats are `nb`, as the service receives it. */
const withNb = async (nb: unknown) => decoded(await fields({ capabilities: [{ can: 'x/y', with: P.space.did(), nb }] as unknown as API.Capabilities }))

/** `ucan` with its model's fields replaced by `patch` (re-encoded: its signature no longer verifies, its payload is what matters). */
async function patched(ucan: API.Delegation, patch: Record<string, unknown>): Promise<API.Delegation> {
  const model = { ...(ucan.data as unknown as { model: Record<string, unknown> }).model, ...patch }
  return Delegation.create({ root: (await UCAN.write(model as never)) as never }) as unknown as API.Delegation
}

/** Ours and ucanto's payload bytes for `ucan`, as strings (ours undefined when left to ucanto). */
async function both(ucan: API.Delegation): Promise<[string | undefined, string]> {
  const { iss, aud } = didsOf(ucan)
  const ours = signedPayload(ucan, iss, aud)
  return [ours === undefined ? undefined : Buffer.from(ours).toString(), Buffer.from(await ucantoPayload(ucan)).toString()]
}

/** Whether verifyUcanSignature answers as ucanto does for `ucan`, falling back to ucanto (counted) or not. */
async function verifiesAsUcanto(ucan: API.Delegation): Promise<{ ours: boolean; ucanto: boolean; fellBack: number }> {
  const dids = didsOf(ucan)
  const verifier = createPrincipalParser().parse(dids.iss)
  let fellBack = 0
  const ours = await verifyUcanSignature(ucan, verifier, dids, () => (fellBack++, UCAN.verifySignature(ucan.data, verifier)))
  return { ours, ucanto: await UCAN.verifySignature(ucan.data, verifier), fellBack }
}

/** `value` nested `levels` times in a list (`[[…]]`) or a map (`{"k":{…}}`). */
const nest = (value: unknown, levels: number, as: 'list' | 'map'): unknown => {
  let v = value
  for (let i = 0; i < levels; i++) v = as === 'list' ? [v] : { k: v }
  return v
}

describe('signedPayload', () => {
  test('equals ucanto\'s bytes for plain values: strings (escapes, unicode, surrogates), integers, nested maps and lists, key order', async () => {
    const strings = ['', 'a"b\\c', 'tab\there\nnewline\u0000\u001f', 'é漢字🙂', '\ud800 lone', '</script>', 'm'.repeat(5000)]
    const cases: API.Delegation[] = [
      await fields(),
      await fields({ expiration: Infinity }),
      await fields({ notBefore: 1_700_000_000, nonce: 'n0nce' }),
      await fields({ notBefore: 0, nonce: '' }),
      await fields({ facts: [{ k: 'v', n: 1, nested: { z: [1, 'two', { y: -3 }] } }] }),
      await fields({ capabilities: strings.map((s, i) => ({ can: `x/${i}`, with: P.space.did(), nb: { s, [s]: i, list: [s, i, -i] } })) as unknown as API.Capabilities }),
      await fields({ capabilities: [{ can: '*', with: 'ucan:*', nb: { b: 1, a: 2, B: 3, '': 4, 'ä': 5, aa: 6, '10': 7, '9': 8 } }] as unknown as API.Capabilities }),
      await fields({ proofs: [await fields({ nonce: 'p1' }), await fields({ nonce: 'p2' })] }),
      await fields({ capabilities: [{ can: 'n/max', with: P.space.did(), nb: { big: Number.MAX_SAFE_INTEGER, small: Number.MIN_SAFE_INTEGER, zero: 0 } }] as unknown as API.Capabilities }),
    ]
    for (const made of cases) {
      for (const ucan of [made, await decoded(made)]) {
        const { iss, aud } = didsOf(ucan)
        const ours = signedPayload(ucan, iss, aud)
        expect(ours, JSON.stringify(ucan.capabilities).slice(0, 200)).toBeDefined()
        expect(Buffer.from(ours as Uint8Array).toString()).toBe(Buffer.from(await ucantoPayload(ucan)).toString())
      }
    }
  })

  test('random plain values: the same bytes as ucanto (500 UCANs)', async () => {
    let seed = 7
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n)
    const chars = ['a', 'Z', '0', '"', '\\', '/', '\n', '\u0001', 'é', '漢', '🙂', ' ', '\u2028', '~']
    const str = () => Array.from({ length: rnd(8) }, () => chars[rnd(chars.length)]).join('')
    const value = (depth: number): unknown => {
      const k = rnd(depth > 2 ? 2 : 4)
      if (k === 0) return str()
      if (k === 1) return rnd(2) === 0 ? rnd(1_000_000) : -rnd(1_000_000)
      if (k === 2) return Array.from({ length: rnd(4) }, () => value(depth + 1))
      return Object.fromEntries(Array.from({ length: rnd(4) }, () => [str(), value(depth + 1)]))
    }
    for (let i = 0; i < 500; i++) {
      const made = await fields({ capabilities: [{ can: `r/${i}`, with: P.space.did(), nb: value(0) as never }] as unknown as API.Capabilities, nonce: str() })
      const ucan = i % 2 === 0 ? made : await decoded(made)
      const { iss, aud } = didsOf(ucan)
      expect(Buffer.from(signedPayload(ucan, iss, aud) as Uint8Array).toString()).toBe(Buffer.from(await ucantoPayload(ucan)).toString())
    }
  })

  test('bytes, links, booleans, null and floats are left to ucanto (undefined), and verification falls back to it', async () => {
    const digest = await sha256.digest(new Uint8Array([1]))
    for (const nb of [{ b: new Uint8Array([1, 2]) }, { l: Link.create(0x55, digest) }, { t: true }, { n: null }, { f: 1.5 }, { deep: [{ x: [false] }] }]) {
      const ucan = await decoded(await fields({ capabilities: [{ can: 'x/y', with: P.space.did(), nb }] as unknown as API.Capabilities }))
      const { iss, aud } = didsOf(ucan)
      expect(signedPayload(ucan, iss, aud)).toBeUndefined()
      const verifier = createPrincipalParser().parse(iss)
      let fellBack = 0
      expect(await verifyUcanSignature(ucan, verifier, { iss, aud }, () => (fellBack++, UCAN.verifySignature(ucan.data, verifier)))).toBe(true)
      expect(fellBack).toBe(1)
    }
  })

  test('verifyUcanSignature: a verifier for another DID, or a signature by another key, is false', async () => {
    const ucan = await decoded(await fields())
    const dids = didsOf(ucan)
    const principal = createPrincipalParser()
    expect(await verifyUcanSignature(ucan, principal.parse(dids.iss), dids, () => true)).toBe(true)
    expect(await verifyUcanSignature(ucan, principal.parse(P.mallory.did()), dids, () => true)).toBe(false)
    const forged = await decoded(
      await delegate({
        issuer: { ...P.mallory, did: () => P.agent.did(), sign: (p: Uint8Array) => P.mallory.sign(p), signatureAlgorithm: P.mallory.signatureAlgorithm } as unknown as API.Signer,
        audience: P.service,
        capabilities: [{ can: 'upload/add', with: P.space.did() }] as unknown as API.Capabilities,
        expiration: 2_000_000_000,
      }),
    )
    expect(await verifyUcanSignature(forged, principal.parse(P.agent.did()), didsOf(forged), () => true)).toBe(false)
    expect(await verifyInvocationSignature(forged, principal)).toBe(false)
    expect(await verifyInvocationSignature(ucan, principal)).toBe(true)
  })

  test('the header is written for each UCAN version (each its own, not one cached for all), and the header cache holds at most 16', async () => {
    const made = await decoded(await fields())
    // dag-ucan's readVersion takes any string holding d.d.d: a sender can vary it at will.
    const versions = Array.from({ length: 40 }, (_, i) => `0.${i}.1`)
    for (const v of [...versions, ...versions.slice(0, 5)]) {
      const ucan = await patched(made, { v })
      const [ours, ucanto] = await both(ucan)
      expect(ours, v).toBe(ucanto)
      expect(JSON.parse(Buffer.from(ucanto.split('.')[0] as string, 'base64url').toString()).ucv).toBe(v)
    }
    // Headers are cached (the common version and algorithm cost nothing after the first)...
    // ...and a hostile variety of versions is not kept: exactly the bound, no more.
    expect(cachedHeaderCount()).toBe(16)
  })

  test('nesting deeper than 32 (lists or maps) is left to ucanto; 32 deep is written (the recursion bound)', async () => {
    // att (depth 0) → capability (1) → nb (2) → nb.v (3) → …: a string under `levels` wrappers in nb.v is at depth 3 + levels.
    for (const as of ['list', 'map'] as const) {
      const deepest = await withNb({ v: nest('s', 29, as) })
      const [ours, ucanto] = await both(deepest)
      expect(ours, `${as} at depth 32`).toBe(ucanto)
      for (const levels of [30, 40]) {
        const tooDeep = await withNb({ v: nest('s', levels, as) })
        const { iss, aud } = didsOf(tooDeep)
        expect(signedPayload(tooDeep, iss, aud), `${as} at depth ${3 + levels}`).toBeUndefined()
        expect(await verifiesAsUcanto(tooDeep)).toEqual({ ours: true, ucanto: true, fellBack: 1 })
      }
    }
    // Mixed: lists and maps count alike.
    const mixed = await withNb({ v: nest(nest('s', 15, 'map'), 15, 'list') })
    expect(signedPayload(mixed, ...(Object.values(didsOf(mixed)) as [API.DID, API.DID]))).toBeUndefined()
  })

  test('maps with a "/" or an "asCID" key (dag-json\'s link and bytes forms) are left to ucanto', async () => {
    for (const nb of [{ '/': 'x' }, { a: { '/': 'x' } }, { asCID: 'x' }, { a: [{ asCID: 1 }] }]) {
      const ucan = await withNb(nb)
      const { iss, aud } = didsOf(ucan)
      expect(signedPayload(ucan, iss, aud), JSON.stringify(nb)).toBeUndefined()
      expect(await verifiesAsUcanto(ucan)).toEqual({ ours: true, ucanto: true, fellBack: 1 })
    }
    // Why: dag-json reads a map whose "/" equals its "bytes" as a CID and refuses to encode it, where
    // writing it as a map would give bytes ucanto never verifies. Such a map only comes from hand-made CBOR.
    const ucan = await decoded(await fields())
    const model = (ucan.data as unknown as { model: Record<string, unknown> }).model
    const link = { ...model, att: [{ can: 'x/y', with: P.space.did(), nb: { c: { '/': 'x', bytes: 'x' } } }] }
    const { iss, aud } = didsOf(ucan)
    expect(signedPayload({ data: { model: link } } as unknown as API.Delegation, iss, aud)).toBeUndefined()
  })

  test('the maps a UCAN model holds are plain objects, even when made from prototype-less ones (so the null-prototype case never reaches the writer)', async () => {
    const nb = Object.assign(Object.create(null) as object, { b: 'x', a: Object.assign(Object.create(null) as object, { n: 1 }) })
    const made = await fields({ capabilities: [{ can: 'x/y', with: P.space.did(), nb }] as unknown as API.Capabilities })
    for (const ucan of [made, await decoded(made)]) {
      const model = (ucan.data as unknown as { model: { att: { nb: { a: object } }[] } }).model
      expect(Object.getPrototypeOf(model.att[0]!.nb)).toBe(Object.prototype)
      expect(Object.getPrototypeOf(model.att[0]!.nb.a)).toBe(Object.prototype)
      const [ours, ucanto] = await both(ucan)
      expect(ours).toBe(ucanto)
    }
  })

  test('a JWT-encoded UCAN is left to ucanto, whichever text its signature covers', async () => {
    const made = await fields({ nonce: 'jwt' })
    const canonical = UCAN.format(made.data)
    const [h, p] = canonical.split('.') as [string, string]
    // The same payload with its keys in another order and spaced: dag-ucan keeps it as a JWT view.
    const obj = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
    const reordered = Object.fromEntries(Object.entries(obj).reverse())
    const text = `${h}.${Buffer.from(JSON.stringify(reordered, null, 1)).toString('base64url')}`
    for (const signedText of [text, `${h}.${p}`]) {
      const sig = await P.agent.sign(new TextEncoder().encode(signedText))
      const view = UCAN.parse(`${text}.${Buffer.from(sig.raw).toString('base64url')}` as never)
      expect((view as unknown as { jwt?: string }).jwt).toBeDefined()
      const ucan = (await parseDelegation(await formatDelegation(Delegation.create({ root: (await UCAN.write(view)) as never }) as never))).ok as API.Delegation
      expect((ucan.data as unknown as { jwt?: string }).jwt).toBeDefined()
      const { iss, aud } = didsOf(ucan)
      expect(signedPayload(ucan, iss, aud)).toBeUndefined()
      const answer = await verifiesAsUcanto(ucan)
      expect(answer.fellBack).toBe(1)
      expect(answer.ours).toBe(answer.ucanto)
    }
  })

  test("verifyUcanSignature: the issuer's own key under another DID is false (the verifier's DID must be the issuer's, as in dag-ucan)", async () => {
    const ucan = await decoded(await fields())
    const dids = didsOf(ucan)
    const elsewhere = P.agent.verifier.withDID('did:web:elsewhere.example')
    // The key alone verifies the signature...
    expect(await elsewhere.verify(new TextEncoder().encode((await both(ucan))[1]), ucan.signature as never)).toBe(true)
    // ...but not under a DID other than the issuer's: ucanto says no, and so do we.
    expect(await UCAN.verifySignature(ucan.data, elsewhere)).toBe(false)
    expect(await verifyUcanSignature(ucan, elsewhere as unknown as API.Verifier, dids, () => true)).toBe(false)
  })
})

describe('issuerOf and audienceOf', () => {
  test("format each DID once per Delegation object (ucanto's getter is read once), and answer the same after", async () => {
    // Made here, not parsed (parseDelegation formats the DIDs already).
    const ucan = await fields({ nonce: 'dids' })
    const reads = { issuer: 0, audience: 0 }
    for (const field of ['issuer', 'audience'] as const) {
      const principal = ucan[field]
      Object.defineProperty(ucan, field, { get: () => (reads[field]++, principal) })
    }
    for (let i = 0; i < 3; i++) {
      expect(issuerOf(ucan)).toBe(P.agent.did())
      expect(audienceOf(ucan)).toBe(P.service.did())
      expect(didsOf(ucan)).toEqual({ iss: P.agent.did(), aud: P.service.did() })
    }
    expect(reads).toEqual({ issuer: 1, audience: 1 })
  })

  test('answer what ucanto formats for did:key issuers and audiences of every key, and a non-did:key DID; the did:key strings kept are bounded (256)', async () => {
    const keys = await Promise.all(Array.from({ length: 300 }, () => ed25519.generate()))
    // More distinct keys than the bound, then the first ones again (evicted by then): always ucanto's string.
    for (const [i, issuer] of [...keys, ...keys.slice(0, 8)].entries()) {
      const audience = keys[(i * 7 + 1) % keys.length] as API.Signer
      const ucan = await decoded(await fields({ issuer, audience }))
      expect(didsOf(ucan)).toEqual({ iss: ucan.issuer.did(), aud: ucan.audience.did() })
      expect(issuerOf(ucan)).toBe(issuer.did())
      expect(cachedDidKeyCount()).toBeLessThanOrEqual(256)
    }
    expect(cachedDidKeyCount()).toBe(256)
    // A did:web audience (not a did:key view): formatted by its own did().
    const web = await decoded(await fields({ audience: DID.parse('did:web:example.org') as unknown as API.Principal }))
    expect(audienceOf(web)).toBe('did:web:example.org')
  })
})
