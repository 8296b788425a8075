import { describe, expect, it } from 'vitest'
import {
  AmbiguousVerifierError,
  ed25519Signer,
  ed25519Verifier,
  formatSignatureLine,
  formatVerifierKey,
  InvalidSignatureError,
  isValidKeyName,
  keyId,
  MalformedKeyError,
  MalformedNoteError,
  MAX_NOTE_SIZE,
  openNote,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  UnverifiedNoteError,
} from '../../src/tlog/note.js'
import { C2SP_FOO, ENOCH, PETER, PLUS_IN_BASE64_VKEY } from '../vectors/signed-note.js'
import { LOG } from '../vectors/litewitness.js'

const peterNote = PETER.text + '\n' + PETER.sigLine
const utf8 = new TextEncoder()
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

describe('keys', () => {
  it('derives the x/mod PeterNeumann vkey from its skey and round-trips both', () => {
    const s = parseSignerKey(PETER.skey)
    expect(s.name).toBe('PeterNeumann')
    expect(s.keyId).toBe(0xc74f20a3)
    expect(s.vkey).toBe(PETER.vkey)
    expect(s.skey).toBe(PETER.skey)
    expect(JSON.stringify(s)).not.toContain('PRIVATE') // the secret is not enumerable
    expect(parseVerifierKey(PETER.vkey)).toMatchObject({ name: 'PeterNeumann', keyId: 0xc74f20a3, type: 1 })
    const v = ed25519Verifier(PETER.vkey)
    expect(v.vkey).toBe(PETER.vkey)
  })

  it('recomputes the key IDs of known vkeys', () => {
    for (const [vkey, id] of [
      [PETER.vkey, 0xc74f20a3],
      [ENOCH.vkey, 0xaf0cfe78],
      [C2SP_FOO.vkey, 0x530d903a],
      [PLUS_IN_BASE64_VKEY, 0x16b31509],
      [LOG.vkey, 0x5202289b],
    ] as const) {
      const k = parseVerifierKey(vkey)
      expect(k.keyId).toBe(id)
      expect(keyId(k.name, k.type, k.publicKey)).toBe(id)
      expect(formatVerifierKey(k.name, k.type, k.publicKey)).toBe(vkey)
    }
  })

  it('splits a vkey only at the first two "+" (the base64 may contain "+")', () => {
    const k = parseVerifierKey(PLUS_IN_BASE64_VKEY)
    expect(k.name).toBe('keyserver.geomys.org')
    expect(k.publicKey.length).toBe(32)
  })

  it('derives the litewitness log key from its seed', () => {
    const s = ed25519Signer(LOG.origin, Buffer.from(LOG.seedHex, 'hex'))
    expect(s.vkey).toBe(LOG.vkey)
    expect(s.skey).toBe(LOG.skey)
    expect(Buffer.from(parseVerifierKey(LOG.vkey).publicKey).toString('hex')).toBe(LOG.publicKeyHex)
  })

  it('rejects the x/mod negative vkeys', () => {
    expect(() => parseVerifierKey(PETER.badLengthVkey)).toThrow(MalformedKeyError)
    // Unknown algorithm 0x65 with the key ID adjusted to match (x/mod note_test.go).
    const unknownAlg = 'PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'
    const raw = Buffer.from(unknownAlg.split('+')[2]!, 'base64')
    expect(keyId('PeterNeumann', raw[0]!, raw.subarray(1))).toBe(0x173116ae)
    expect(() => parseVerifierKey(unknownAlg)).toThrow(/unknown signature type 0x65/)
    expect(() => ed25519Verifier(unknownAlg)).toThrow(MalformedKeyError)
  })

  it('rejects a type 0x04 key as a note verifier', () => {
    expect(() => ed25519Verifier('example.com/witness+10a1c019+BGSEitir7W6FmBs7OHWyUrh2frtLAvcDrKOx5xu9ao5Q')).toThrow(/want 0x01/)
  })

  it('rejects uppercase hex, missing parts and non-canonical base64', () => {
    expect(() => parseVerifierKey(PETER.vkey.replace('c74f20a3', 'C74F20A3'))).toThrow(MalformedKeyError)
    expect(() => parseVerifierKey('PeterNeumann+c74f20a3')).toThrow(MalformedKeyError)
    expect(() => parseVerifierKey('PeterNeumann')).toThrow(MalformedKeyError)
    expect(() => parseVerifierKey('+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW')).toThrow(MalformedKeyError)
    // 'W' → 'X' only changes the two trailing pad bits: Go accepts it, we do not.
    expect(() => parseVerifierKey(PETER.vkey.slice(0, -1) + 'X')).toThrow(MalformedKeyError)
    expect(() => parseSignerKey(PETER.skey.replace('PRIVATE', 'private'))).toThrow(MalformedKeyError)
    expect(() => parseSignerKey(PETER.vkey)).toThrow(MalformedKeyError)
  })

  it('never puts the secret key in a parse error', () => {
    for (let i = 0; i < PETER.skey.length; i++) {
      try {
        parseSignerKey(PETER.skey.slice(0, i) + '!' + PETER.skey.slice(i + 1))
      } catch (e) {
        expect((e as Error).message).not.toContain('AYEKFALVFG')
      }
    }
  })

  for (const [what, key, parse] of [
    ['vkey', PETER.vkey, parseVerifierKey],
    ['vkey with "+" in base64', PLUS_IN_BASE64_VKEY, parseVerifierKey],
    ['skey', PETER.skey, parseSignerKey],
  ] as const) {
    it(`rejects every truncation and every single-byte change of a valid ${what}`, () => {
      expect(() => parse(key)).not.toThrow()
      for (let i = 0; i < key.length; i++) expect(() => parse(key.slice(0, i)), `truncated to ${i}`).toThrow(MalformedKeyError)
      for (let i = 0; i < key.length; i++) {
        for (let b = 0; b < 256; b++) {
          if (b === key.charCodeAt(i)) continue
          const changed = key.slice(0, i) + String.fromCharCode(b) + key.slice(i + 1)
          expect(() => parse(changed), `byte ${i} set to ${b}`).toThrow(MalformedKeyError)
        }
      }
    })
  }
})

describe('key names', () => {
  // Go's unicode.IsSpace: the Unicode White_Space property.
  const spaces = [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005,
    0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000]

  it('rejects every Unicode space, "+", control characters and lone surrogates', () => {
    for (const c of spaces) {
      expect(isValidKeyName(`a${String.fromCodePoint(c)}b`), `U+${c.toString(16)}`).toBe(false)
    }
    expect(isValidKeyName('')).toBe(false)
    expect(isValidKeyName('a+b')).toBe(false)
    expect(isValidKeyName('a\u0001b')).toBe(false)
    expect(isValidKeyName('a\ud800b')).toBe(false)
    expect(isValidKeyName('a\udc00')).toBe(false)
  })

  it('uses exactly the White_Space set (U+FEFF and U+180E are not spaces, as in Go)', () => {
    const whiteSpace = /\p{White_Space}/u
    for (let c = 0x20; c < 0x10000; c++) {
      if (c >= 0xd800 && c <= 0xdfff) continue
      expect(isValidKeyName(`a${String.fromCharCode(c)}`), `U+${c.toString(16)}`).toBe(!whiteSpace.test(String.fromCharCode(c)) && c !== 0x2b)
    }
    expect(spaces.every((c) => whiteSpace.test(String.fromCodePoint(c)))).toBe(true)
    expect(isValidKeyName('a\ufeffb')).toBe(true)
    expect(isValidKeyName('example.com/ключ/😀')).toBe(true)
  })
})

describe('signing and opening notes', () => {
  const peter = () => ed25519Verifier(PETER.vkey)
  const enoch = () => ed25519Verifier(ENOCH.vkey)

  it('signs the x/mod vector exactly (Ed25519 is deterministic)', () => {
    expect(signNote(PETER.text, [parseSignerKey(PETER.skey)])).toBe(peterNote)
  })

  it('opens the x/mod vector', () => {
    const n = openNote(peterNote, [peter()])
    expect(n.text).toBe(PETER.text)
    expect(n.verified).toHaveLength(1)
    expect(n.verified[0]).toMatchObject({ name: 'PeterNeumann', keyId: 0xc74f20a3 })
    expect(n.verified[0]!.signature).toHaveLength(64)
    expect(n.unverified).toEqual([])
  })

  it('opens the C2SP example note', () => {
    const n = openNote(C2SP_FOO.note, [ed25519Verifier(C2SP_FOO.vkey)])
    expect(n.text).toBe('This is an example message.\n')
  })

  it('ignores unknown keys and reports them as unverified', () => {
    const both = PETER.text + '\n' + PETER.sigLine + ENOCH.sigLine
    expect(openNote(both, [peter(), enoch()]).verified.map((s) => s.name)).toEqual(['PeterNeumann', 'EnochRoot'])
    const n = openNote(both, [peter()])
    expect(n.verified.map((s) => s.name)).toEqual(['PeterNeumann'])
    expect(n.unverified.map((s) => s.name)).toEqual(['EnochRoot'])
    // Same name, other key ID: unknown, ignored.
    const other = ed25519Signer('PeterNeumann', new Uint8Array(32).fill(7))
    const n2 = openNote(signNote(PETER.text, [other]) + PETER.sigLine, [peter()])
    expect(n2.unverified).toHaveLength(1)
  })

  it('drops repeated signatures', () => {
    const n = openNote(PETER.text + '\n' + PETER.sigLine + PETER.sigLine + ENOCH.sigLine + ENOCH.sigLine, [peter()])
    expect(n.verified).toHaveLength(1)
    expect(n.unverified).toHaveLength(1)
  })

  it('throws UnverifiedNoteError when no known key signed', () => {
    expect(() => openNote(peterNote, [enoch()])).toThrow(UnverifiedNoteError)
    expect(() => openNote(peterNote, [])).toThrow(UnverifiedNoteError)
    try {
      openNote(peterNote, [])
    } catch (e) {
      expect((e as UnverifiedNoteError).note.text).toBe(PETER.text)
      expect((e as UnverifiedNoteError).note.unverified).toHaveLength(1)
    }
  })

  it('throws InvalidSignatureError for a known key whose signature fails, even next to a valid one', () => {
    const b64 = PETER.sigLine.split(' ')[2]!
    const mid = b64.length / 2
    const flipped = b64.slice(0, mid) + [...b64.slice(mid, mid + 4)].map((c) => (c === 'A' ? 'B' : 'A')).join('') + b64.slice(mid + 4)
    const bad = PETER.text + '\n— PeterNeumann ' + flipped
    expect(() => openNote(bad, [peter()])).toThrow('invalid signature for key PeterNeumann+c74f20a3')
    expect(() => openNote(bad, [peter()])).toThrow(InvalidSignatureError)
    expect(() => openNote(PETER.text + '\n' + ENOCH.sigLine + bad.slice(PETER.text.length + 1), [peter(), enoch()])).toThrow(InvalidSignatureError)
    // A changed text fails for the known key.
    expect(() => openNote('X' + peterNote.slice(1), [peter()])).toThrow(InvalidSignatureError)
  })

  it('throws AmbiguousVerifierError for two verifiers with one name and key ID', () => {
    expect(() => openNote(peterNote, [peter(), peter()])).toThrow(AmbiguousVerifierError)
  })

  it('rejects the x/mod malformed notes', () => {
    const malformed = [
      PETER.text,
      PETER.text + '\n',
      PETER.text + '\n' + PETER.sigLine.slice(0, -1),
      '\u0001' + peterNote,
      '\ud800' + peterNote, // the string analogue of a "\xff" byte: not valid UTF-8
      PETER.text + '\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n',
      peterNote + 'Unexpected line.\n',
      PETER.text + '\n' + PETER.sigLine.repeat(101),
      PETER.text + '\n— PeterNeumann\n',
      PETER.text + '\n— PeterNeumann \n',
      PETER.text + '\n— PeterNeumann AAAAAA==\n', // 4 bytes: no room for a signature
      PETER.text + '\n-- PeterNeumann x08go\n',
      PETER.text + '\n—PeterNeumann ' + PETER.sigLine.slice(16),
      peterNote.replace('\n\n', '\r\n\n'),
      peterNote.replace('problem,', 'problem,\t'),
      peterNote.slice(0, -3) + 'N=\n', // non-canonical base64 (trailing bits)
      peterNote.slice(0, -2) + '\n', // missing padding
    ]
    for (const m of malformed) {
      expect(() => parseNote(m), JSON.stringify(m)).toThrow(MalformedNoteError)
      expect(() => openNote(m, [peter()]), JSON.stringify(m)).toThrow(MalformedNoteError)
    }
    // 100 signatures are fine.
    expect(parseNote(PETER.text + '\n' + PETER.sigLine.repeat(100)).signatures).toHaveLength(100)
    expect(openNote(PETER.text + '\n' + PETER.sigLine.repeat(100), [peter()]).verified).toHaveLength(1)
  })

  it('splits at the last blank line, so text may contain blank lines', () => {
    const s = parseSignerKey(PETER.skey)
    for (const text of ['a\n\nb\n', '\n', 'a\n\n', 'x\n\n— PeterNeumann AAAA\n']) {
      const n = openNote(signNote(text, [s]), [peter()])
      expect(n.text).toBe(text)
    }
  })

  it('refuses to sign invalid text', () => {
    const s = parseSignerKey(PETER.skey)
    for (const t of ['', 'no newline', 'a\r\n', 'a\u0000\n', '\ud800\n']) expect(() => signNote(t, [s])).toThrow(MalformedNoteError)
    expect(() => signNote('a\n', [])).toThrow(MalformedNoteError)
  })

  it('formats and parses signature lines', () => {
    const sig = { name: 'n', keyId: 0xdeadbeef, signature: Uint8Array.of(1, 2, 3) }
    const line = formatSignatureLine(sig)
    expect(line).toBe('— n 3q2+7wECAw==\n')
    expect(parseNote('t\n\n' + line).signatures).toEqual([sig])
    expect(() => formatSignatureLine({ ...sig, name: 'a b' })).toThrow(MalformedNoteError)
    expect(() => formatSignatureLine({ ...sig, keyId: 2 ** 32 })).toThrow(MalformedNoteError)
  })

  it('rejects every truncation of valid notes', () => {
    for (const [msg, vkey] of [[peterNote, PETER.vkey], [C2SP_FOO.note, C2SP_FOO.vkey]] as const) {
      const v = ed25519Verifier(vkey)
      expect(() => openNote(msg, [v])).not.toThrow()
      for (let i = 0; i < msg.length; i++) expect(() => openNote(msg.slice(0, i), [v]), `truncated to ${i}`).toThrow()
    }
  })

  it('rejects every single-byte change of a valid note', () => {
    const v = ed25519Verifier(PETER.vkey)
    const bytes = utf8.encode(peterNote)
    let opened = 0
    for (let i = 0; i < bytes.length; i++) {
      for (let b = 0; b < 256; b++) {
        if (b === bytes[i]) continue
        const changed = bytes.slice()
        changed[i] = b
        let msg: string
        try {
          msg = strictUtf8.decode(changed)
        } catch {
          continue // not UTF-8: rejected before it can become a note string
        }
        opened++
        expect(() => openNote(msg, [v]), `byte ${i} set to ${b}`).toThrow()
      }
    }
    expect(opened).toBeGreaterThan(bytes.length * 100)
  })
})

describe('bounds and named errors (mutation testing, issue 9)', () => {
  const peter = () => ed25519Verifier(PETER.vkey)
  const errorOf = (f: () => unknown): Error => {
    try {
      f()
    } catch (e) {
      return e as Error
    }
    throw new Error('did not throw')
  }

  it('error classes carry their names', () => {
    expect(errorOf(() => parseVerifierKey('x')).name).toBe('MalformedKeyError')
    expect(errorOf(() => parseNote('x')).name).toBe('MalformedNoteError')
    expect(errorOf(() => openNote(peterNote, [])).name).toBe('UnverifiedNoteError')
    expect(errorOf(() => openNote('X' + peterNote.slice(1), [peter()])).name).toBe('InvalidSignatureError')
    expect(errorOf(() => openNote(peterNote, [peter(), peter()])).name).toBe('AmbiguousVerifierError')
    expect(errorOf(() => openNote(peterNote, [peter(), peter()])).message).toBe('ambiguous key PeterNeumann+c74f20a3')
  })

  it('vkeys and skeys: at most 4096 characters (an ML-DSA-44 vkey fits), and only strings', () => {
    const mldsa = new Uint8Array(1312).fill(7)
    const vkeyOfLength = (len: number) => {
      const base = formatVerifierKey('n', 0x06, mldsa)
      return formatVerifierKey('n'.repeat(1 + len - base.length), 0x06, mldsa)
    }
    const exact = vkeyOfLength(4096)
    expect(exact).toHaveLength(4096)
    expect(parseVerifierKey(exact).publicKey).toHaveLength(1312)
    expect(() => parseVerifierKey(vkeyOfLength(4097))).toThrow(new MalformedKeyError('malformed verifier key'))
    expect(() => parseVerifierKey(new String(PETER.vkey) as string)).toThrow(new MalformedKeyError('malformed verifier key'))

    const seed = new Uint8Array(32).fill(3)
    const skeyOfLength = (len: number) => {
      const base = ed25519Signer('n', seed).skey
      return ed25519Signer('n'.repeat(1 + len - base.length), seed).skey
    }
    expect(skeyOfLength(4096)).toHaveLength(4096)
    expect(parseSignerKey(skeyOfLength(4096)).skey).toBe(skeyOfLength(4096))
    expect(() => parseSignerKey(skeyOfLength(4097))).toThrow(new MalformedKeyError('malformed signer key'))
    expect(() => parseSignerKey(new String(PETER.skey) as string)).toThrow(new MalformedKeyError('malformed signer key'))
  })

  it('vkey key lengths per type: 32 bytes for 0x01 and 0x04, 1312 for 0x06; an empty key is refused by name', () => {
    expect(parseVerifierKey(formatVerifierKey('m', 0x06, new Uint8Array(1312))).type).toBe(0x06)
    expect(() => parseVerifierKey(formatVerifierKey('m', 0x06, new Uint8Array(1311)))).toThrow('verifier key public key must be 1312 bytes')
    expect(() => parseVerifierKey(formatVerifierKey('m', 0x04, new Uint8Array(33)))).toThrow('verifier key public key must be 32 bytes')
    expect(() => parseVerifierKey('m+00000000+')).toThrow(new MalformedKeyError('verifier key has an empty key'))
    expect(() => parseVerifierKey(PETER.vkey.replace('PeterNeumann', 'Peter Neumann'))).toThrow('verifier key has an invalid key name')
    expect(() => parseVerifierKey(PETER.vkey.replace('c74f20a3', 'c74f20a4'))).toThrow('verifier key key ID does not match its key')
    expect(() => parseVerifierKey(PETER.vkey.replace('c74f20a3', 'C74F20A3'))).toThrow('verifier key key ID must be 8 lowercase hex digits')
    expect(() => parseVerifierKey(PETER.vkey + '=')).toThrow('verifier key is not canonical base64')
    expect(() => parseVerifierKey('PeterNeumann')).toThrow('malformed key: too few "+" separators')
  })

  it('formats the signature type as a byte 0..255 and key IDs as 8 hex digits, leading zeros kept', () => {
    const pk = new Uint8Array(32)
    for (const t of [-1, 256, 1.5]) expect(() => formatVerifierKey('n', t, pk)).toThrow(new MalformedKeyError('invalid signature type'))
    expect(formatVerifierKey('n', 0xff, pk)).toMatch(/^n\+[0-9a-f]{8}\+/)
    expect(formatVerifierKey('n', 0, pk)).toMatch(/^n\+[0-9a-f]{8}\+AA/)
    expect(() => formatVerifierKey('a b', 1, pk)).toThrow(new MalformedKeyError('invalid key name'))
    // The first key name whose ID is below 0x10000000 (its hex starts with "0").
    const seed = new Uint8Array(32).fill(5)
    let s = ed25519Signer('k0', seed)
    for (let i = 1; s.keyId >= 0x10000000; i++) s = ed25519Signer(`k${i}`, seed)
    expect(s.vkey.split('+')[1]).toMatch(/^0[0-9a-f]{7}$/)
    expect(parseVerifierKey(s.vkey).keyId).toBe(s.keyId)
    expect(parseSignerKey(s.skey).vkey).toBe(s.vkey)
    const text = 'small key id\n'
    const n = signNote(text, [s])
    expect(openNote(n, [ed25519Verifier(s.vkey)]).text).toBe(text)
    expect(() => openNote(n, [ed25519Verifier(s.vkey), ed25519Verifier(s.vkey)])).toThrow(`ambiguous key ${s.vkey.split('+').slice(0, 2).join('+')}`)
  })

  it('signature lines: key IDs are uint32s, signatures at least 1 byte (5 decoded bytes with the key ID)', () => {
    const one = { name: 'n', keyId: 0, signature: Uint8Array.of(9) }
    expect(parseNote('t\n\n' + formatSignatureLine(one)).signatures).toEqual([one])
    const max = { ...one, keyId: 0xffffffff }
    expect(parseNote('t\n\n' + formatSignatureLine(max)).signatures).toEqual([max])
    for (const keyId of [-1, 1.5, 2 ** 32]) expect(() => formatSignatureLine({ ...one, keyId })).toThrow(new MalformedNoteError('key ID must be a uint32'))
    expect(() => formatSignatureLine({ ...one, signature: new Uint8Array(0) })).toThrow(new MalformedNoteError('empty signature'))
    expect(() => formatSignatureLine({ ...one, name: '' })).toThrow(new MalformedNoteError('invalid signature key name'))
    expect(() => parseNote('t\n\n— n AAAAAA==\n')).toThrow(new MalformedNoteError('signature is shorter than 5 bytes'))
    expect(() => parseNote('t\n\n— n\n')).toThrow(new MalformedNoteError('signature line has no signature'))
    expect(() => parseNote('t\n\n-- n AAAAAAA=\n')).toThrow(new MalformedNoteError('signature line does not start with "— "'))
    expect(() => parseNote('t\n\n— a+b AAAAAAA=\n')).toThrow(new MalformedNoteError('signature line has an invalid key name'))
    expect(() => parseNote('t\n\n— n AAAAAAB=\n')).toThrow(new MalformedNoteError('signature is not canonical base64'))
    expect(() => parseNote('t\n')).toThrow(new MalformedNoteError('note has no blank line before its signatures'))
    expect(() => parseNote('t\n\n')).toThrow(new MalformedNoteError('note signature block must be non-empty lines ending in a newline'))
    expect(() => parseNote(5 as unknown as string)).toThrow(new MalformedNoteError('note is not a string'))
  })

  it('signs with 1..100 signers only', () => {
    const s = parseSignerKey(PETER.skey)
    const hundred = signNote('t\n', Array(100).fill(s))
    expect(parseNote(hundred).signatures).toHaveLength(100)
    expect(() => signNote('t\n', Array(101).fill(s))).toThrow(new MalformedNoteError('a note needs 1..100 signatures'))
    expect(() => signNote('t', [s])).toThrow(new MalformedNoteError('note text must end in a newline'))
  })

  it('the size bound is 1 MiB of UTF-8: exactly 2^20 bytes open, one more byte does not', () => {
    const s = parseSignerKey(PETER.skey)
    const tail = signNote('x\n', [s]).slice(2) // "\n— PeterNeumann …\n"
    const tailBytes = Buffer.byteLength(tail)
    const textOf = (bytes: number) => 'x'.repeat(bytes - tailBytes - 1) + '\n'
    const exact = signNote(textOf(MAX_NOTE_SIZE), [s])
    expect(Buffer.byteLength(exact)).toBe(MAX_NOTE_SIZE)
    expect(openNote(exact, [peter()]).text).toBe(textOf(MAX_NOTE_SIZE))
    const over = signNote(textOf(MAX_NOTE_SIZE + 1), [s])
    expect(() => parseNote(over)).toThrow(new MalformedNoteError(`note is larger than ${MAX_NOTE_SIZE} bytes`))
    // 2-byte characters: fewer than 2^20 UTF-16 code units, 2^20 + 1 bytes.
    const wideText = '\u00e9'.repeat(Math.floor((MAX_NOTE_SIZE - tailBytes - 1) / 2)) + '\n'
    const wide = wideText.slice(0, -1) + 'x'.repeat((MAX_NOTE_SIZE - tailBytes - 1) % 2 + 1) + '\n' + tail
    expect(Buffer.byteLength(wide)).toBe(MAX_NOTE_SIZE + 1)
    expect(wide.length).toBeLessThan(MAX_NOTE_SIZE)
    expect(() => parseNote(wide)).toThrow(/larger than/)
    expect(() => signNote('\u00e9'.repeat(MAX_NOTE_SIZE / 2) + '\n', [s])).toThrow(new MalformedNoteError(`note text is larger than ${MAX_NOTE_SIZE} bytes`))
  })

  it('UTF-16 surrogates: pairs (U+10000..U+10FFFF) are text, lone or reversed ones are not UTF-8', () => {
    const s = parseSignerKey(PETER.skey)
    for (const t of ['\ud800\udc00\n', '\udbff\udfff\n', '😀 and 😀\n', '\ud7ff\ue000\uffff\n', 'a\u0020\u007f\n']) {
      expect(openNote(signNote(t, [s]), [peter()]).text, JSON.stringify(t)).toBe(t)
    }
    for (const t of ['\ud800\n', '\udc00\n', '\udfff\udbff\n', '\ud800\ud800\udc00\n', 'x\ud800']) {
      expect(() => parseNote(t + '\n— n AAAAAAA=\n'), JSON.stringify(t)).toThrow(new MalformedNoteError('note is not valid UTF-8'))
    }
    expect(() => signNote('\udbff\n', [s])).toThrow(new MalformedNoteError('note text is not valid UTF-8'))
    for (const c of [0x00, 0x09, 0x0d, 0x1f]) {
      expect(() => signNote(`a${String.fromCharCode(c)}\n`, [s])).toThrow(new MalformedNoteError('note text contains a control character'))
    }
  })
})

describe('openNote and signer keys, by rule (mutation testing, issue 9)', () => {
  it('reports each distinct unknown signature once, in note order', () => {
    const other = signNote(PETER.text, [ed25519Signer('Other', new Uint8Array(32).fill(1))]).slice(PETER.text.length + 1)
    const n = openNote(PETER.text + '\n' + ENOCH.sigLine + PETER.sigLine + other + ENOCH.sigLine + other, [ed25519Verifier(PETER.vkey)])
    expect(n.unverified.map((s) => s.name)).toEqual(['EnochRoot', 'Other'])
    expect(n.verified.map((s) => s.name)).toEqual(['PeterNeumann'])
  })

  it('a signer key must wrap a type 0x01 32-byte seed whose public key has the stated ID', () => {
    const seed = new Uint8Array(32).fill(4)
    const s = ed25519Signer('n', seed)
    const [, , name, hex] = s.skey.split('+')
    const wrap = (bytes: number[]) => `PRIVATE+KEY+${name}+${hex}+${Buffer.from(bytes).toString('base64')}`
    expect(parseSignerKey(wrap([0x01, ...seed])).vkey).toBe(s.vkey)
    expect(() => parseSignerKey(wrap([0x04, ...seed]))).toThrow(new MalformedKeyError('signer key is not a 32-byte Ed25519 seed'))
    expect(() => parseSignerKey(wrap([0x01, ...seed, 0]))).toThrow(new MalformedKeyError('signer key is not a 32-byte Ed25519 seed'))
    expect(() => parseSignerKey(wrap([0x01, ...seed.subarray(1)]))).toThrow(new MalformedKeyError('signer key is not a 32-byte Ed25519 seed'))
    const otherId = ((s.keyId ^ 1) >>> 0).toString(16).padStart(8, '0')
    expect(() => parseSignerKey(s.skey.replace(`+${hex}+`, `+${otherId}+`))).toThrow(new MalformedKeyError('signer key ID does not match its key'))
    expect(() => parseSignerKey(s.skey.replace(`+${hex}+`, `+${hex.toUpperCase()}+`))).toThrow(new MalformedKeyError('malformed signer key'))
    expect(() => parseSignerKey(s.skey.slice(0, -1) + '!')).toThrow(new MalformedKeyError('signer key is not canonical base64'))
  })
})

describe('types and exact texts (mutation testing, issue 9)', () => {
  it('only primitive strings are key names, note texts and notes', () => {
    expect(isValidKeyName(new String('a') as string)).toBe(false)
    expect(() => signNote(new String('t\n') as string, [parseSignerKey(PETER.skey)])).toThrow(new MalformedNoteError('note text must end in a newline'))
    expect(() => ed25519Signer('n', Array(32).fill(0) as unknown as Uint8Array)).toThrow(new MalformedKeyError('Ed25519 seed must be 32 bytes'))
  })

  it('a high surrogate must be followed by a low one (U+DC00..U+DFFF), not by U+E000', () => {
    expect(() => parseNote('\ud800\ue000\n\n— n AAAAAAA=\n')).toThrow(new MalformedNoteError('note is not valid UTF-8'))
  })

  it('errors print key types as two hex digits and say why a note is unverified', () => {
    expect(() => ed25519Verifier('example.com/witness+10a1c019+BGSEitir7W6FmBs7OHWyUrh2frtLAvcDrKOx5xu9ao5Q')).toThrow(
      new MalformedKeyError('verifier key type is 0x04, want 0x01 (Ed25519)'),
    )
    expect(() => openNote(peterNote, [])).toThrow(new UnverifiedNoteError({ text: '', unverified: [] }).message)
    expect(new UnverifiedNoteError({ text: '', unverified: [] }).message).toBe('note has no verifiable signatures')
  })
})

describe('parser rules each fail alone (note.ts survivors of the mutation run, issue 9)', () => {
  it('a key ID is exactly 8 hex digits: a leading "0" or a trailing non-hex character is refused, though parseInt would accept both', () => {
    // guards the ^ and $ anchors of the key-ID pattern in parseSignerKey and parseKeyParts
    const s = ed25519Signer('n', new Uint8Array(32).fill(5))
    const hex = s.keyId.toString(16).padStart(8, '0')
    expect(parseInt(`0${hex}`, 16)).toBe(s.keyId)
    expect(parseInt(`${hex}g`, 16)).toBe(s.keyId)
    for (const bad of [`0${hex}`, `${hex}g`]) {
      expect(() => parseSignerKey(s.skey.replace(`+${hex}+`, `+${bad}+`))).toThrow(new MalformedKeyError('malformed signer key'))
      expect(() => parseVerifierKey(s.vkey.replace(`+${hex}+`, `+${bad}+`))).toThrow(
        new MalformedKeyError('verifier key key ID must be 8 lowercase hex digits'),
      )
    }
  })

  it('a lone low surrogate, U+DFFF alone or two low surrogates in a row, is not UTF-8', () => {
    // guards the upper bound of the surrogate range and the "high before low" order check
    for (const t of ['\udfff\n', '\udc00\udc00\n', 'a\udfff\udfff\n']) {
      expect(() => parseNote(t + '\n— n AAAAAAA=\n'), JSON.stringify(t)).toThrow(new MalformedNoteError('note is not valid UTF-8'))
    }
  })

  it('the signature block must be non-empty and end in a newline, checked before its lines are read', () => {
    const block = new MalformedNoteError('note signature block must be non-empty lines ending in a newline')
    expect(() => parseNote('text\n\n')).toThrow(block)
    expect(() => parseNote('text\n\n— n AAAAAAA=')).toThrow(block)
  })

  it('a signature line with an empty key name says so, not "no signature"', () => {
    expect(() => parseNote('text\n\n—  AAAAAAA=\n')).toThrow(new MalformedNoteError('signature line has an invalid key name'))
  })

  it('a key starting with "+" has an empty name, not too few separators', () => {
    expect(() => parseVerifierKey('+0000000a+AQ==')).toThrow(new MalformedKeyError('verifier key has an invalid key name'))
  })

  it('a key of one byte has its type and no public key: an unknown type or a wrong size, not "empty"', () => {
    const oneByte = (type: number) => `n+0000000a+${Buffer.from([type]).toString('base64')}`
    expect(() => parseVerifierKey(oneByte(0x01))).toThrow(new MalformedKeyError('verifier key public key must be 32 bytes'))
    expect(() => parseVerifierKey(oneByte(0x7f))).toThrow(new MalformedKeyError('verifier key has unknown signature type 0x7f'))
    expect(() => parseVerifierKey('n+0000000a+')).toThrow(new MalformedKeyError('verifier key has an empty key'))
  })
})
