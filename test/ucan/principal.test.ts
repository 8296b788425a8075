/**
 * The node:crypto principal must agree with ucanto's pure-JS Ed25519 on every input: it is an
 * optimisation with security weight.
 */
import { describe, expect, test } from 'vitest'
import fc from 'fast-check'
import { Signature } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { RSA, Verifier as DefaultVerifier, ed25519 } from '@ucanto/principal'
import { createFastSigner, createPrincipalParser } from '../../src/ucan/index.js'
import { pinnedKey } from './helpers.js'

const seed = fc.uint8Array({ minLength: 32, maxLength: 32 })
const message = fc.uint8Array({ minLength: 0, maxLength: 512 })

describe('createPrincipalParser', () => {
  test('agrees with ucanto on valid, tampered and cross-key signatures (random keys and messages)', async () => {
    const fast = createPrincipalParser()
    await fc.assert(
      fc.asyncProperty(seed, seed, message, fc.nat({ max: 63 }), fc.integer({ min: 1, max: 255 }), async (s1, s2, msg, at, xor) => {
        const signer = await ed25519.derive(s1)
        const other = await ed25519.derive(s2)
        const sig = await signer.sign(msg)
        const tampered = Signature.create(sig.code, sig.raw.map((b, i) => (i === at ? b ^ xor : b)))
        const fastV = fast.parse(signer.did())
        const slowV = DefaultVerifier.parse(signer.did())
        for (const [payload, signature] of [
          [msg, sig],
          [msg, tampered],
          [new Uint8Array([...msg, 0]), sig],
          [msg, await other.sign(msg)],
        ] as const) {
          // @noble/ed25519 throws on a signature whose R is not a curve point; that is a "no".
          const expected = await Promise.resolve()
            .then(() => slowV.verify(payload, signature))
            .catch(() => false)
          expect(await fastV.verify(payload, signature)).toBe(expected)
        }
        expect(await fastV.verify(msg, sig)).toBe(true)
        expect(await fastV.verify(msg, tampered)).toBe(false)
      }),
      { numRuns: 60 },
    )
  })

  test('rejects a wrong signature code, a short or long signature, and S + L (non-canonical)', async () => {
    const signer = await pinnedKey(9)
    const fastV = createPrincipalParser().parse(signer.did())
    const msg = new TextEncoder().encode('payload')
    const sig = await signer.sign(msg)
    expect(await fastV.verify(msg, Signature.create(0xd0e7 as never, sig.raw))).toBe(false)
    expect(await fastV.verify(msg, Signature.create(sig.code, sig.raw.subarray(0, 63)))).toBe(false)
    expect(await fastV.verify(msg, Signature.create(sig.code, new Uint8Array([...sig.raw, 0])))).toBe(false)
    const L = (1n << 252n) + 27742317777372353535851937790883648493n
    let s = 0n
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig.raw[i] as number)
    let t = s + L
    const malleated = new Uint8Array(sig.raw)
    for (let i = 32; i < 64; i++) {
      malleated[i] = Number(t & 255n)
      t >>= 8n
    }
    expect(await fastV.verify(msg, Signature.create(sig.code, malleated))).toBe(false)
  })

  test('keeps ucanto semantics for DIDs: same did(), withDID, garbage throws, RSA falls back', async () => {
    const parser = createPrincipalParser({ maxCachedKeys: 2 })
    const signer = await pinnedKey(10)
    const v = parser.parse(signer.did())
    expect(v.did()).toBe(signer.did())
    expect(v.toDIDKey()).toBe(signer.did())
    expect(parser.parse(signer.did())).toBe(v) // cached
    const web = v.withDID('did:web:example.com')
    expect(web.did()).toBe('did:web:example.com')
    const msg = new Uint8Array([1, 2, 3])
    expect(await web.verify(msg, await signer.sign(msg))).toBe(true)
    expect(() => parser.parse('did:key:zNotAKey' as API.DID)).toThrow()
    expect(() => parser.parse('not a did' as API.DID)).toThrow()
    // Evicted entries are parsed again correctly.
    for (let i = 11; i < 15; i++) parser.parse((await pinnedKey(i)).did())
    expect(await parser.parse(signer.did()).verify(msg, await signer.sign(msg))).toBe(true)
    const rsa = await RSA.generate()
    const rv = parser.parse(rsa.did())
    expect(await rv.verify(msg, await rsa.sign(msg))).toBe(true)
    expect(await rv.verify(new Uint8Array([9]), await rsa.sign(msg))).toBe(false)
  })
})

describe('createFastSigner', () => {
  test('signs the same bytes as ucanto (Ed25519 is deterministic)', async () => {
    await fc.assert(
      fc.asyncProperty(seed, message, async (s, msg) => {
        const signer = await ed25519.derive(s)
        const fast = createFastSigner(signer)
        expect(fast.did()).toBe(signer.did())
        const a = await fast.sign(msg)
        const b = await signer.sign(msg)
        expect(a.code).toBe(b.code)
        expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true)
        expect(await signer.verifier.verify(msg, a)).toBe(true)
        expect(await fast.verify(msg, b)).toBe(true)
      }),
      { numRuns: 40 },
    )
  })

  test('withDID keeps the key; archive round-trips through ucanto', async () => {
    const signer = await pinnedKey(20)
    const fast = createFastSigner(signer)
    const web = fast.withDID('did:web:log.example')
    expect(web.did()).toBe('did:web:log.example')
    expect(web.toDIDKey()).toBe(signer.did())
    const msg = new Uint8Array([4, 5, 6])
    expect(await signer.verifier.verify(msg, await web.sign(msg))).toBe(true)
    expect(ed25519.from(fast.toArchive() as never).did()).toBe(signer.did())
    expect(Buffer.from(fast.encode()).equals(Buffer.from(signer.encode()))).toBe(true)
  })
})
