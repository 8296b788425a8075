/**
 * signed-payload.ts writes the bytes a UCAN signature covers without dag-json: they must be
 * exactly the bytes ucanto's `UCAN.verifySignature` hands its verifier (captured here), for every
 * UCAN shape it accepts, and it must leave every other shape to ucanto (undefined).
 */
import { beforeAll, describe, expect, test } from 'vitest'
import { UCAN, delegate } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { sha256 } from 'multiformats/hashes/sha2'
import * as Link from 'multiformats/link'
import {
  createPrincipalParser,
  didsOf,
  formatDelegation,
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
})
