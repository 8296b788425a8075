import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { formatCheckpoint, MalformedCheckpointError, MAX_CHECKPOINT_SIZE, parseCheckpoint } from '../../src/tlog/checkpoint.js'
import type { Checkpoint } from '../../src/tlog/checkpoint.js'
import { ed25519Verifier, openNote } from '../../src/tlog/note.js'
import { CP1, CP3, CP3_BITFLIP_SIG, CP5, LOG, note } from '../vectors/litewitness.js'

const EMPTY = '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='
const ROOT = 'QrtXrQZCCvpIgsSmOsah7HdICzMLLyDfxToMql9WTjY='

describe('checkpoint vectors', () => {
  it('parses and re-formats the litewitness checkpoints', () => {
    for (const [c, size, root] of [
      [CP1, 1, 'KgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
      [CP3, 3, 'RcCI1Nk56ZcSmIEfIn0SleqtV7uvrlXNccFx595Iwl0='],
      [CP5, 5, ROOT],
    ] as const) {
      const p = parseCheckpoint(c.text)
      expect(p.origin).toBe(LOG.origin)
      expect(p.size).toBe(size)
      expect(Buffer.from(p.rootHash).toString('base64')).toBe(root)
      expect(p.extension).toBe('')
      expect(formatCheckpoint(p)).toBe(c.text)
    }
  })

  it('verifies the litewitness log signatures with the published vkey; the bit flip fails', () => {
    const v = ed25519Verifier(LOG.vkey)
    for (const c of [CP1, CP3, CP5]) expect(openNote(note(c), [v]).text).toBe(c.text)
    // litewitness.txt flips "…WVrx6go=" to "…WVrx6gx=": the last base64 digit then carries set
    // padding bits, so the strict decoder rejects the line before any signature check.
    expect(() => openNote(`${CP3.text}\n${CP3_BITFLIP_SIG}`, [v])).toThrow()
    // The same flip spelled canonically ("s" keeps the pad bits zero) is an invalid signature.
    expect(() => openNote(`${CP3.text}\n${CP3.sig.replace('6go=', '6gs=')}`, [v])).toThrow('invalid signature')
  })

  it('parses the empty tree and keeps extension lines raw', () => {
    expect(parseCheckpoint(`o\n0\n${EMPTY}\n`).size).toBe(0)
    const c = parseCheckpoint(`example.com/log\n7\n${ROOT}\next one\n— ext two\n`)
    expect(c.extension).toBe('ext one\n— ext two\n')
    expect(formatCheckpoint(c)).toBe(`example.com/log\n7\n${ROOT}\next one\n— ext two\n`)
    expect(parseCheckpoint(`o\n${Number.MAX_SAFE_INTEGER}\n${ROOT}\n`).size).toBe(Number.MAX_SAFE_INTEGER)
  })

  it('rejects non-canonical and malformed checkpoints', () => {
    const bad = [
      '',
      `o\n5\n${ROOT}`, // no final newline
      `o\n5\n`,
      `\n5\n${ROOT}\n`, // empty origin
      `o\n+5\n${ROOT}\n`,
      `o\n05\n${ROOT}\n`,
      `o\n 5\n${ROOT}\n`,
      `o\n5 \n${ROOT}\n`,
      `o\n-1\n${ROOT}\n`,
      `o\n-0\n${ROOT}\n`,
      `o\n1e3\n${ROOT}\n`,
      `o\n0x5\n${ROOT}\n`,
      `o\n${2 ** 53}\n${ROOT}\n`,
      `o\n99999999999999999999\n${ROOT}\n`,
      `o\n5\n${ROOT.slice(0, -1)}\n`, // missing padding
      `o\n5\n${ROOT.slice(0, -2)}Z=\n`, // non-zero trailing bits
      `o\n5\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n`, // 31 bytes
      `o\n5\n${ROOT} \n`,
      `o\n5\n${ROOT}\n\n`, // empty extension line
      `o\n5\n${ROOT}\next\n\nmore\n`,
      `o\r\n5\n${ROOT}\n`,
      `o\t\n5\n${ROOT}\n`,
      `o\ud800\n5\n${ROOT}\n`,
      `o\n5\n${ROOT}\n`.repeat(1) + 'x'.repeat(1_000_001) + '\n',
    ]
    for (const t of bad) expect(() => parseCheckpoint(t), JSON.stringify(t.slice(0, 80))).toThrow(MalformedCheckpointError)
  })

  it('refuses to format out-of-range fields', () => {
    const ok: Checkpoint = { origin: 'o', size: 1, rootHash: new Uint8Array(32), extension: '' }
    expect(formatCheckpoint(ok)).toBe('o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n')
    for (const c of [
      { ...ok, origin: '' },
      { ...ok, origin: 'a\nb' },
      { ...ok, origin: 'a\rb' },
      { ...ok, size: -1 },
      { ...ok, size: 1.5 },
      { ...ok, size: 2 ** 53 },
      { ...ok, rootHash: new Uint8Array(31) },
      { ...ok, extension: 'no newline' },
      { ...ok, extension: '\n' },
      { ...ok, extension: 'a\n\nb\n' },
    ]) {
      expect(() => formatCheckpoint(c), JSON.stringify({ ...c, rootHash: c.rootHash.length })).toThrow(MalformedCheckpointError)
    }
  })
})

describe('checkpoint properties', () => {
  const line = fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }).filter((s) => !/[\u0000-\u001f]/.test(s))
  const checkpoint = fc.record({
    origin: line,
    size: fc.oneof(fc.nat(1000), fc.maxSafeNat()),
    rootHash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    extension: fc.array(line, { maxLength: 3 }).map((ls) => ls.map((l) => l + '\n').join('')),
  })

  it('parse(format(c)) = c', () => {
    fc.assert(
      fc.property(checkpoint, (c) => {
        const text = formatCheckpoint(c)
        const p = parseCheckpoint(text)
        expect(p.origin).toBe(c.origin)
        expect(p.size).toBe(c.size)
        expect(Buffer.from(p.rootHash).equals(Buffer.from(c.rootHash))).toBe(true)
        expect(p.extension).toBe(c.extension)
        expect(formatCheckpoint(p)).toBe(text)
      }),
      { numRuns: 500 },
    )
  })

  it('any text that parses re-formats to itself (canonical only)', () => {
    const piece = fc.constantFrom('o', '\n', '0', '5', '05', '+', ' ', ROOT, EMPTY, ROOT.slice(0, -2) + 'Z=', 'x', '\r')
    const text = fc.array(piece, { maxLength: 12 }).map((ps) => ps.join(''))
    fc.assert(
      fc.property(text, (t) => {
        let p: Checkpoint
        try {
          p = parseCheckpoint(t)
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedCheckpointError)
          return
        }
        expect(formatCheckpoint(p)).toBe(t)
      }),
      { numRuns: 5000 },
    )
  })
})

describe('each malformation has its own MalformedCheckpointError message (mutation testing, issue 9)', () => {
  // Several checks overlap (a text without its final newline also has a bad root line), so only the
  // message shows that the check meant for a malformation is the one that caught it.
  const cases: [string, unknown, RegExp][] = [
    ['not a string (a String object)', new String(`o\n5\n${ROOT}\n`), /^checkpoint is not a string$/],
    ['no final newline', `o\n5\n${ROOT}`, /^checkpoint must end in a newline$/],
    ['two lines', `o\n5\n`, /^checkpoint must have at least three lines$/],
    ['one line', `o\n`, /^checkpoint must have at least three lines$/],
    ['empty origin', `\n5\n${ROOT}\n`, /^checkpoint origin is empty$/],
    ['leading zero in size', `o\n05\n${ROOT}\n`, /^checkpoint size is not a canonical decimal ≤ 2\^53−1$/],
    ['size 2^53', `o\n${2 ** 53}\n${ROOT}\n`, /^checkpoint size is not a canonical decimal ≤ 2\^53−1$/],
    ['31-byte root', `o\n5\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n`, /^checkpoint root hash is not canonical base64 of 32 bytes$/],
    ['empty extension line', `o\n5\n${ROOT}\n\n`, /^checkpoint extension lines must be non-empty$/],
    ['tab in origin', `o\t\n5\n${ROOT}\n`, /^checkpoint contains a control character or invalid UTF-8$/],
    ['lone surrogate', `o\ud800\n5\n${ROOT}\n`, /^checkpoint contains a control character or invalid UTF-8$/],
    ['over 1 MB', `o\n5\n${ROOT}\n${'x'.repeat(1_000_001)}\n`, /^checkpoint is larger than 1000000 bytes$/],
  ]
  for (const [what, text, message] of cases) {
    it(`parse: ${what}`, () => {
      let err: unknown
      try {
        parseCheckpoint(text as string)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(MalformedCheckpointError)
      expect((err as Error).name).toBe('MalformedCheckpointError')
      expect((err as Error).message).toMatch(message)
    })
  }

  const ok: Checkpoint = { origin: 'o', size: 1, rootHash: new Uint8Array(32), extension: '' }
  const formatCases: [string, unknown, RegExp][] = [
    // Values of the wrong type that would otherwise slip through the string operations.
    ['origin not a string (an array)', { ...ok, origin: ['o'] }, /^checkpoint origin must be a non-empty single line$/],
    ['empty origin', { ...ok, origin: '' }, /^checkpoint origin must be a non-empty single line$/],
    ['negative size', { ...ok, size: -1 }, /^checkpoint size must be a safe integer ≥ 0$/],
    ['31-byte root', { ...ok, rootHash: new Uint8Array(31) }, /^checkpoint root hash must be 32 bytes$/],
    ['root not a Uint8Array', { ...ok, rootHash: Array(32).fill(0) }, /^checkpoint root hash must be 32 bytes$/],
    ['extension not a string (an array)', { ...ok, extension: ['ext\n'] }, /^checkpoint extension must be non-empty lines each ending in a newline$/],
    ['extension without its newline', { ...ok, extension: 'ext' }, /^checkpoint extension must be non-empty lines each ending in a newline$/],
    ['CR in the origin', { ...ok, origin: 'a\rb' }, /^checkpoint contains a control character or invalid UTF-8$/],
  ]
  for (const [what, c, message] of formatCases) {
    it(`format: ${what}`, () => {
      expect(() => formatCheckpoint(c as Checkpoint)).toThrow(MalformedCheckpointError)
      expect(() => formatCheckpoint(c as Checkpoint)).toThrow(message)
    })
  }

  it('the size bound is on UTF-8 bytes: exactly 1,000,000 bytes parse, one more does not', () => {
    const head = `o\n5\n${ROOT}\n`
    const exact = head + 'x'.repeat(MAX_CHECKPOINT_SIZE - head.length - 1) + '\n'
    expect(Buffer.byteLength(exact)).toBe(MAX_CHECKPOINT_SIZE)
    expect(parseCheckpoint(exact).extension).toHaveLength(MAX_CHECKPOINT_SIZE - head.length)
    expect(() => parseCheckpoint(head + 'x'.repeat(MAX_CHECKPOINT_SIZE - head.length) + '\n')).toThrow(/larger than/)
    // 2-byte characters: far fewer than 10^6 UTF-16 code units, yet 10^6 (+ 1) bytes.
    const wide = head + '\u00e9'.repeat((MAX_CHECKPOINT_SIZE - head.length - 1) / 2)
    expect(Buffer.byteLength(wide + '\n')).toBe(MAX_CHECKPOINT_SIZE)
    expect(parseCheckpoint(wide + '\n').size).toBe(5)
    expect((wide + 'x\n').length).toBeLessThan(MAX_CHECKPOINT_SIZE)
    expect(() => parseCheckpoint(wide + 'x\n')).toThrow(/larger than/)
  })
})
