/**
 * src/client/entries.ts: entry sources are byte-exact and checked locally. Lines split on `\n`
 * only, whatever the chunk boundaries (a `\n`, a `\r` or a multi-byte character cut between two
 * chunks); a line over the limit is refused without reading past it; text must be UTF-8; base64
 * is strict; arguments with U+FFFD are refused.
 */
import { describe, expect, it } from 'vitest'
import {
  EntryTooLargeError,
  InvalidBase64Error,
  InvalidUtf8Error,
  MAX_ENTRY_SIZE,
  type SourceEntry,
  entriesFromArguments,
  entriesFromLines,
} from '../../src/client/entries.js'

const enc = (s: string) => new TextEncoder().encode(s)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

async function collect(it: AsyncIterable<SourceEntry>): Promise<SourceEntry[]> {
  const out: SourceEntry[] = []
  for await (const e of it) out.push(e)
  return out
}

/** `bytes` cut into chunks of `size` bytes. */
function* chunks(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
}

describe('entriesFromLines', () => {
  const input = Buffer.concat([enc('a\r\n'), enc('\n'), enc('ü🌳x\n'), enc('\u0000\n'), enc('tail')])

  it('splits on \\n only and keeps every other byte, whatever the chunking; empty lines skipped, line numbers kept', async () => {
    for (const size of [1, 2, 3, 5, 7, 1000]) {
      const got = await collect(entriesFromLines(chunks(input, size)))
      expect(got.map((e) => [e.position, e.line, hex(e.bytes)]), `chunks of ${size}`).toEqual([
        [0, 1, hex(enc('a\r'))],
        [1, 3, hex(enc('ü🌳x'))],
        [2, 4, hex(enc('\u0000'))],
        [3, 5, hex(enc('tail'))],
      ])
    }
  })

  it('refuses a line that is not UTF-8, naming it (never U+FFFD)', async () => {
    const bad = Buffer.concat([enc('ok\n'), Buffer.from([0xc3, 0x28]), enc('\n')])
    await expect(collect(entriesFromLines([bad]))).rejects.toThrow(InvalidUtf8Error)
    await expect(collect(entriesFromLines([bad]))).rejects.toThrow(/^line 2 is not valid UTF-8; use --base64 or --file/)
  })

  it('accepts exactly MAX_ENTRY_SIZE bytes and refuses one more as soon as it is seen, without reading further', async () => {
    expect(MAX_ENTRY_SIZE).toBe(65535)
    expect((await collect(entriesFromLines([new Uint8Array(MAX_ENTRY_SIZE).fill(0x61)])))[0]!.bytes.length).toBe(MAX_ENTRY_SIZE)
    let pulled = 0
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) {
        pulled++
        yield new Uint8Array(4096).fill(0x61)
      }
    }
    await expect(collect(entriesFromLines(endless()))).rejects.toThrow(EntryTooLargeError)
    expect(pulled).toBe(Math.ceil((MAX_ENTRY_SIZE + 1) / 4096))
  })

  it('--base64 lines: strict padded standard base64, decoded; a bad line names its number', async () => {
    const got = await collect(entriesFromLines([enc('/w==\n'), enc('AAEC\n')], 'base64'))
    expect(got.map((e) => hex(e.bytes))).toEqual(['ff', '000102'])
    for (const bad of ['/w', '_w==', 'AAF=', '/w==\r', 'AA EC']) {
      await expect(collect(entriesFromLines([enc(`AAEC\n${bad}\n`)], 'base64')), bad).rejects.toThrow(InvalidBase64Error)
      await expect(collect(entriesFromLines([enc(`AAEC\n${bad}\n`)], 'base64')), bad).rejects.toThrow(/^line 2 /)
    }
  })
})

describe('entriesFromArguments', () => {
  it('encodes each argument as UTF-8; refuses U+FFFD (what Node makes of non-UTF-8 argv bytes) and oversized arguments', () => {
    expect(entriesFromArguments(['a', 'é']).map((e) => [e.line, hex(e.bytes)])).toEqual([
      [1, '61'],
      [2, 'c3a9'],
    ])
    expect(() => entriesFromArguments(['fine', 'bad\uFFFD'])).toThrow(/^argument 2 is not valid UTF-8; use --base64 or --file$/)
    expect(() => entriesFromArguments(['x'.repeat(MAX_ENTRY_SIZE + 1)])).toThrow(EntryTooLargeError)
  })
})
