import { describe, expect, it } from 'vitest'
import { MalformedCheckpointError } from '../../src/tlog/checkpoint.js'
import { cosignatureMessage, cosignatureVerifier, ed25519Cosigner } from '../../src/tlog/cosignature.js'
import { SIG_TYPE_COSIGNATURE_V1 } from '../../src/tlog/note.js'
import {
  ed25519Verifier,
  formatSignatureLine,
  InvalidSignatureError,
  MalformedKeyError,
  openNote,
  parseNote,
  parseVerifierKey,
} from '../../src/tlog/note.js'
import { C2SP_COSIG_LINE, CP5, LOG, note, WITNESS } from '../vectors/litewitness.js'

const seed = Buffer.from(WITNESS.seedHex, 'hex')
const T = WITNESS.timestamp

describe('cosignature/v1', () => {
  it('derives the litewitness witness vkey (type 0x04, not 0x01)', () => {
    const c = ed25519Cosigner(WITNESS.name, seed)
    expect(c.vkey).toBe(WITNESS.vkey)
    expect(c.keyId).toBe(0x10a1c019)
    const k = parseVerifierKey(c.vkey)
    expect(k.type).toBe(SIG_TYPE_COSIGNATURE_V1)
    expect(Buffer.from(k.publicKey).toString('hex')).toBe(WITNESS.publicKeyHex)
    expect(parseVerifierKey(WITNESS.vkeyType01).keyId).toBe(0x05828f80)
  })

  it('builds the signed message', () => {
    expect(new TextDecoder().decode(cosignatureMessage(CP5.text, T))).toBe(`cosignature/v1\ntime 1679315147\n${CP5.text}`)
    expect(new TextDecoder().decode(cosignatureMessage(CP5.text, 0))).toBe(`cosignature/v1\ntime 0\n${CP5.text}`)
  })

  it('produces exactly the §5.3 cosignature line over the size-5 checkpoint at T=1679315147', () => {
    const sig = ed25519Cosigner(WITNESS.name, seed).cosign(CP5.text, T)
    expect(sig.signature).toHaveLength(72)
    expect(formatSignatureLine(sig)).toBe(WITNESS.cp5CosigLine)
  })

  it('verifies the vector alongside the log signature, and extracts the timestamp', () => {
    const v = cosignatureVerifier(WITNESS.vkey)
    const n = openNote(note(CP5) + WITNESS.cp5CosigLine, [ed25519Verifier(LOG.vkey), v])
    expect(n.verified.map((s) => s.name)).toEqual([LOG.origin, WITNESS.name])
    expect(v.timestamp(n.verified[1]!.signature)).toBe(T)
    expect(v.vkey).toBe(WITNESS.vkey)
  })

  it('decodes the C2SP example line timestamp as big-endian 1679315147', () => {
    const [s] = parseNote(`x\n\n${C2SP_COSIG_LINE}`).signatures
    expect(s!.signature).toHaveLength(72)
    const v = cosignatureVerifier(WITNESS.vkey) // any 0x04 key: timestamp() checks no signature
    expect(v.timestamp(s!.signature)).toBe(1679315147)
  })

  it('rejects changed timestamps, texts, lengths and little-endian timestamps', () => {
    const v = cosignatureVerifier(WITNESS.vkey)
    const { signature } = ed25519Cosigner(WITNESS.name, seed).cosign(CP5.text, T)
    const msg = new TextEncoder().encode(CP5.text)
    expect(v.verify(msg, signature)).toBe(true)
    const later = signature.slice()
    later[7]! ^= 1
    expect(v.verify(msg, later)).toBe(false)
    const le = signature.slice()
    le.set(signature.slice(0, 8).reverse(), 0)
    expect(v.verify(msg, le)).toBe(false)
    expect(v.verify(new TextEncoder().encode(CP5.text + 'ext\n'), signature)).toBe(false)
    expect(v.verify(msg, signature.subarray(0, 71))).toBe(false)
    expect(v.verify(msg, signature.subarray(8))).toBe(false)
    const huge = signature.slice()
    huge[0] = 0x80 // > 2^63−1
    expect(v.verify(msg, huge)).toBe(false)
    expect(() => v.timestamp(huge)).toThrow(RangeError)
    expect(v.verify(Uint8Array.of(0xff, 0x0a), signature)).toBe(false) // not UTF-8
    // A wrong cosignature from a known key is an invalid signature for openNote.
    const bad = formatSignatureLine({ name: WITNESS.name, keyId: 0x10a1c019, signature: later })
    expect(() => openNote(note(CP5) + bad, [ed25519Verifier(LOG.vkey), v])).toThrow(InvalidSignatureError)
  })

  it('cosigns and verifies extension lines', () => {
    const text = CP5.text + 'extension line\n'
    const c = ed25519Cosigner(WITNESS.name, seed)
    const v = cosignatureVerifier(c.vkey)
    expect(v.verify(new TextEncoder().encode(text), c.cosign(text, 1).signature)).toBe(true)
  })

  it('refuses non-canonical checkpoint text and bad timestamps', () => {
    const c = ed25519Cosigner(WITNESS.name, seed)
    for (const t of [CP5.text.replace('\n5\n', '\n05\n'), 'not a checkpoint\n', CP5.text.slice(0, -1), CP5.text + '\n']) {
      expect(() => c.cosign(t, T)).toThrow(MalformedCheckpointError)
    }
    for (const t of [-1, 1.5, 2 ** 53, NaN]) expect(() => c.cosign(CP5.text, t)).toThrow(RangeError)
    expect(c.cosign(CP5.text, Number.MAX_SAFE_INTEGER).signature).toHaveLength(72)
  })

  it('requires type 0x04 cosigner keys', () => {
    expect(() => cosignatureVerifier(WITNESS.vkeyType01)).toThrow(MalformedKeyError)
    expect(() => cosignatureVerifier(LOG.vkey)).toThrow(/want 0x04/)
    expect(() => ed25519Cosigner('bad name', seed)).toThrow(MalformedKeyError)
    expect(() => ed25519Cosigner(WITNESS.name, seed.subarray(1))).toThrow(MalformedKeyError)
  })
})

describe('cosignature/v1 edges (mutation testing, issue 9)', () => {
  const c = ed25519Cosigner(WITNESS.name, seed)
  const v = cosignatureVerifier(c.vkey)
  const enc = (s: string) => new TextEncoder().encode(s)

  it('timestamp() accepts exactly 72 bytes and T ≤ 2^53−1, with RangeErrors naming the rule', () => {
    const { signature } = c.cosign(CP5.text, Number.MAX_SAFE_INTEGER)
    expect(v.timestamp(signature)).toBe(Number.MAX_SAFE_INTEGER)
    expect(v.verify(enc(CP5.text), signature)).toBe(true)
    const over = signature.slice()
    new DataView(over.buffer).setBigUint64(0, BigInt(Number.MAX_SAFE_INTEGER) + 1n)
    expect(() => v.timestamp(over)).toThrow(new RangeError('cosignature timestamp is out of range'))
    // The length check guards timestamp() itself: 71 or 73 bytes still hold an 8-byte prefix.
    for (const n of [8, 71, 73]) {
      const sig = new Uint8Array(n)
      sig.set(signature.subarray(0, Math.min(n, 72)))
      expect(() => v.timestamp(sig), `${n} bytes`).toThrow(new RangeError('cosignature must be 72 bytes'))
    }
  })

  it('signs and verifies the message bytes exactly: no BOM stripping, no U+FFFD substitution', () => {
    // A BOM at the start of the origin is part of the signed text (ignoreBOM: true).
    const bom = CP5.text.replace(LOG.origin, '\ufeff' + LOG.origin)
    expect(v.verify(enc(bom), c.cosign(bom, T).signature)).toBe(true)
    // Bytes that are not UTF-8 never verify, even when their lenient decoding (U+FFFD) is the
    // signed text (fatal: true).
    const replaced = CP5.text.replace(LOG.origin, LOG.origin + '\ufffd')
    const { signature } = c.cosign(replaced, T)
    expect(v.verify(enc(replaced), signature)).toBe(true)
    const bytes = enc(replaced)
    const at = bytes.indexOf(0xef)
    const invalid = Uint8Array.from([...bytes.subarray(0, at), 0xff, ...bytes.subarray(at + 3)])
    expect(new TextDecoder().decode(invalid)).toBe(replaced)
    expect(v.verify(invalid, signature)).toBe(false)
  })

  it('names the rule it enforces in each error', () => {
    expect(() => cosignatureMessage(CP5.text, -1)).toThrow(new RangeError('timestamp must be an integer number of Unix seconds, 0 ≤ T ≤ 2^53−1'))
    expect(() => cosignatureVerifier(LOG.vkey)).toThrow('cosigner key type is 0x01, want 0x04 (cosignature/v1)')
  })
})
