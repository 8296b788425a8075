import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { EntryTooLargeError, MAX_ENTRY_SIZE, MalformedBundleError, formatEntryBundle, parseEntryBundle } from '../../src/tlog/bundle.js'
import { fromHex, hex, utf8 } from './fixtures.js'

describe('entry bundles (c2sp.org/tlog-tiles)', () => {
  it('encodes ["a", "bc"] as 00 01 61 00 02 62 63 (c2sp.org/tlog-tiles: each entry behind a big-endian uint16 length)', () => {
    const b = formatEntryBundle([utf8('a'), utf8('bc')])
    expect(hex(b)).toBe('00016100026263')
    expect(parseEntryBundle(b).map(hex)).toEqual(['61', '6263'])
  })

  it('handles empty entries and the 65535-byte maximum', () => {
    expect(hex(formatEntryBundle([new Uint8Array()]))).toBe('0000')
    expect(parseEntryBundle(fromHex('0000'))).toEqual([new Uint8Array()])
    const max = new Uint8Array(MAX_ENTRY_SIZE).fill(0xab)
    const b = formatEntryBundle([max, utf8('z')])
    expect(b).toHaveLength(2 + 65535 + 2 + 1)
    expect(hex(b.subarray(0, 3))).toBe('ffffab')
    const [e0, e1] = parseEntryBundle(b)
    expect(e0).toEqual(max)
    expect(hex(e1!)).toBe('7a')
  })

  it('rejects a 65536-byte entry with EntryTooLargeError', () => {
    expect(MAX_ENTRY_SIZE).toBe(65535)
    expect(() => formatEntryBundle([utf8('ok'), new Uint8Array(65536)])).toThrow(EntryTooLargeError)
    expect(new EntryTooLargeError('x').name).toBe('EntryTooLargeError')
  })

  it('holds 1..256 entries', () => {
    const full = Array.from({ length: 256 }, (_, i) => utf8(`leaf ${i}`))
    expect(parseEntryBundle(formatEntryBundle(full))).toHaveLength(256)
    expect(() => formatEntryBundle([])).toThrow(RangeError)
    expect(() => formatEntryBundle([...full, utf8('x')])).toThrow(RangeError)
    const tooMany = new Uint8Array(257 * 2) // 257 empty entries
    expect(() => parseEntryBundle(tooMany)).toThrow(MalformedBundleError)
    expect(() => parseEntryBundle(new Uint8Array())).toThrow(MalformedBundleError)
  })

  it('rejects every truncation of a valid bundle', () => {
    const b = formatEntryBundle([utf8('hello'), new Uint8Array(), utf8('world!'), new Uint8Array(300).fill(7)])
    const boundaries = new Set([0, 7, 9, 17, b.length]) // lengths that end exactly after an entry
    for (let n = 0; n < b.length; n++) {
      if (boundaries.has(n)) {
        if (n > 0) expect(parseEntryBundle(b.subarray(0, n)).length).toBeGreaterThan(0)
        continue
      }
      expect(() => parseEntryBundle(b.subarray(0, n)), `prefix ${n}`).toThrow(MalformedBundleError)
    }
    // A trailing partial length prefix or an overlong declared length.
    expect(() => parseEntryBundle(fromHex('00016100'))).toThrow(MalformedBundleError)
    expect(() => parseEntryBundle(fromHex('0003616263ff'))).toThrow(MalformedBundleError)
    expect(() => parseEntryBundle(fromHex('ffff00'))).toThrow(MalformedBundleError)
    expect(new MalformedBundleError('x').name).toBe('MalformedBundleError')
  })

  it('returns copies, not views of the input', () => {
    const b = formatEntryBundle([utf8('abc')])
    const [e] = parseEntryBundle(b)
    b[2] = 0x7a
    expect(hex(e!)).toBe('616263')
  })

  it('property: format/parse round-trips any 1..256 entries', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { minLength: 1, maxLength: 256 }), (entries) => {
        const b = formatEntryBundle(entries)
        expect(b.length).toBe(entries.reduce((n, e) => n + 2 + e.length, 0))
        expect(parseEntryBundle(b)).toEqual(entries)
      }),
      { numRuns: 300 },
    )
  })

  it('property: parse either rejects arbitrary bytes or returns entries that re-encode to them', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (data) => {
        let entries
        try {
          entries = parseEntryBundle(data)
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedBundleError)
          return
        }
        expect(formatEntryBundle(entries)).toEqual(data)
      }),
      { numRuns: 5000 },
    )
  })
})
