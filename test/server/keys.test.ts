/** src/server/keys.ts: the did:key of a signed-note verifier key. */
import { describe, expect, test } from 'vitest'
import { ed25519 } from '@ucanto/principal'
import { didKeyOfVkey } from '../../src/server/keys.js'
import { formatVerifierKey } from '../../src/tlog/index.js'

describe('didKeyOfVkey', () => {
  test('reads the key after the second +, also when its base64 holds a +', () => {
    const pub = new Uint8Array(32).fill(0xfb) // base64 "+/v7…": contains '+'
    const vkey = formatVerifierKey('witness.test', 0x04, pub)
    expect(vkey.split('+').length).toBeGreaterThan(3)
    expect(didKeyOfVkey(vkey)).toBe(ed25519.Verifier.decode(new Uint8Array([0xed, 0x01, ...pub])).did())
    expect(() => didKeyOfVkey('name+01234567+AAAA')).toThrow(/not an Ed25519/)
  })
})
