/**
 * ed25519.ts: libsodium and OpenSSL must give the same signatures and the same verdicts on every
 * honest or tampered input; libsodium may only be stricter (small-order keys), never laxer.
 */
import { describe, expect, test, vi } from 'vitest'
import fc from 'fast-check'
import { ED25519, type Ed25519Backend, LIBSODIUM_ED25519, OPENSSL_ED25519, ed25519PrivateKey, ed25519PublicKey } from '../../src/ucan/ed25519.js'
import { ed25519 } from '@ucanto/principal'

const seed = fc.uint8Array({ minLength: 32, maxLength: 32 })
const message = fc.uint8Array({ minLength: 0, maxLength: 512 })
const sodium = LIBSODIUM_ED25519 as Ed25519Backend

/** The 32-byte public key of a ucanto signer (its encoding: 0x1300 varint, seed, 0xed varint, public key). */
const publicKeyOf = (s: ed25519.EdSigner) => s.encode().subarray(2 + 32 + 2)

describe('ed25519: libsodium and OpenSSL', () => {
  test('libsodium loads here (the fast path is what the other tests run)', () => {
    expect(LIBSODIUM_ED25519).toBeDefined()
    expect(ED25519.name).toBe('libsodium')
  })

  test('sign the same bytes as ucanto and each other, and agree on valid, tampered and cross-key signatures', async () => {
    await fc.assert(
      fc.asyncProperty(seed, seed, message, fc.nat({ max: 63 }), fc.integer({ min: 1, max: 255 }), async (s1, s2, msg, at, xor) => {
        const ucanto = await ed25519.derive(s1)
        const pub = publicKeyOf(ucanto)
        const expected = (await ucanto.sign(msg)).raw
        const signatures = [sodium, OPENSSL_ED25519].map((b) => b.privateKey(s1).sign(msg))
        for (const sig of signatures) expect(Buffer.from(sig).equals(Buffer.from(expected))).toBe(true)
        const tampered = expected.map((b, i) => (i === at ? b ^ xor : b))
        const other = OPENSSL_ED25519.privateKey(s2).sign(msg)
        for (const [m, sig, valid] of [
          [msg, expected, true],
          [msg, tampered, false],
          [new Uint8Array([...msg, 0]), expected, false],
          [msg, other, Buffer.from(s1).equals(Buffer.from(s2))],
        ] as const) {
          expect(sodium.publicKey(pub).verify(m, sig)).toBe(valid)
          expect(OPENSSL_ED25519.publicKey(pub).verify(m, sig)).toBe(valid)
        }
      }),
      { numRuns: 80 },
    )
  })

  test('both refuse S + L (a malleated signature) and wrong lengths; the checked entry points refuse wrong key sizes', async () => {
    const s = new Uint8Array(32).fill(7)
    const msg = new TextEncoder().encode('payload')
    const sig = OPENSSL_ED25519.privateKey(s).sign(msg)
    const L = (1n << 252n) + 27742317777372353535851937790883648493n
    let n = 0n
    for (let i = 63; i >= 32; i--) n = (n << 8n) | BigInt(sig[i] as number)
    let t = n + L
    const malleated = new Uint8Array(sig)
    for (let i = 32; i < 64; i++) {
      malleated[i] = Number(t & 255n)
      t >>= 8n
    }
    const pub = publicKeyOf(await ed25519.derive(s))
    for (const b of [sodium, OPENSSL_ED25519]) {
      expect(b.publicKey(pub).verify(msg, sig)).toBe(true)
      expect(b.publicKey(pub).verify(msg, malleated)).toBe(false)
      expect(b.publicKey(pub).verify(msg, sig.subarray(0, 63))).toBe(false)
      expect(b.publicKey(pub).verify(msg, new Uint8Array([...sig, 0]))).toBe(false)
    }
    expect(() => ed25519PublicKey(new Uint8Array(31))).toThrow(RangeError)
    expect(() => ed25519PrivateKey(new Uint8Array(33))).toThrow(RangeError)
  })

  test('libsodium is stricter, never laxer: a small-order key with (R = identity, S = 0) passes OpenSSL for any message, not libsodium', () => {
    // The identity point (y = 1) as public key and as R, S = 0: [S]B = R + [k]A holds for every message.
    const identity = new Uint8Array(32)
    identity[0] = 1
    const forged = new Uint8Array(64)
    forged.set(identity, 0)
    const msg = new TextEncoder().encode('any message at all')
    expect(OPENSSL_ED25519.publicKey(identity).verify(msg, forged)).toBe(true)
    expect(sodium.publicKey(identity).verify(msg, forged)).toBe(false)
    expect(ed25519PublicKey(identity).verify(msg, forged)).toBe(false)
  })

  test('UCANLOG_ED25519=openssl selects OpenSSL', async () => {
    vi.stubEnv('UCANLOG_ED25519', 'openssl')
    vi.resetModules()
    try {
      const fresh = await import('../../src/ucan/ed25519.js')
      expect(fresh.ED25519.name).toBe('openssl')
    } finally {
      vi.unstubAllEnvs()
      vi.resetModules()
    }
  })
})
