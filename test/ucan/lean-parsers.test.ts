/**
 * src/ucan/lean-parsers.ts: the lean copies of the Storacha parsers accept and refuse exactly what
 * the originals do (same results, same error names and messages), for the probe's parse (`match`)
 * and for delegated capabilities offered to a claim (`select`), and skip the inner schema of an
 * absent optional caveat (the error object ucanto's optional builds and drops).
 */
import { describe, expect, test } from 'vitest'
import type { API } from '@ucanto/core'
import { Schema } from '@ucanto/validator'
import * as Digest from 'multiformats/hashes/digest'
import * as Link from 'multiformats/link'
import { STORACHA_CAPABILITIES } from '../../src/storage/storacha-capabilities.js'
import { leanOptional, leanParser, leanStruct } from '../../src/ucan/lean-parsers.js'

const SPACE = 'did:key:z6MkkvWZKWHrPZm4PGZ5XKXpf7XxWkHPRMGSnjZrmtSsSKyV'
const ISSUER = 'did:key:z6MkrZ1r5XBFZjBU34qyD8fueMbMRkKw17BZaq2ivKFjnz2z'
const digest = Digest.create(0x12, new Uint8Array(32).fill(7))
const car = Link.create(0x0202, digest)
const raw = Link.create(0x55, digest)
const cbor = Link.create(0x71, digest)

/** Caveats to try per ability: valid ones, absent optionals, present optionals good and bad, missing and wrong required fields. */
const NB: Record<string, unknown[]> = {
  'space/blob/add': [
    { blob: { digest: digest.bytes, size: 1 } },
    { blob: { digest: digest.bytes, size: 2 } },
    { blob: { digest: digest.bytes } },
    { blob: { digest: 'x', size: 1 } },
    { blob: 'x' },
    {},
    undefined,
  ],
  'space/index/add': [
    { index: car },
    { index: car, content: raw },
    { index: car, content: 'not a link' },
    { index: car, content: null },
    { index: raw },
    { index: Link.create(0x0202, Digest.create(0x12, new Uint8Array(32).fill(8))) },
    {},
    undefined,
  ],
  'upload/add': [
    { root: raw },
    { root: cbor },
    { root: raw, shards: [car] },
    { root: raw, shards: [] },
    { root: raw, shards: [raw] },
    { root: raw, shards: 'not an array' },
    { root: raw, shards: null },
    { root: 'not a link' },
    {},
    undefined,
  ],
}

/** What a match result says, comparable across the two parsers (no stacks, no object identity). */
function describeMatch(result: API.Result<{ value: { can: string; with: string; nb: unknown } }, API.Failure>): unknown {
  if (result.error) return { error: result.error.name, message: result.error.message }
  return { ok: JSON.stringify(result.ok.value, (_, v) => (v instanceof Uint8Array ? [...v] : v)) }
}

function describeSelect(selection: { matches: { value: unknown }[]; unknown: unknown[]; errors: API.Failure[] }): unknown {
  return {
    matches: selection.matches.map((m) => JSON.stringify(m.value, (_, v) => (v instanceof Uint8Array ? [...v] : v))),
    unknown: selection.unknown.length,
    errors: selection.errors.map((e) => [e.name, e.message]),
  }
}

const source = (can: string, with_: string, nb: unknown) =>
  ({
    capability: { can, with: with_, ...(nb !== undefined && { nb }) },
    delegation: { issuer: { did: () => ISSUER } } as unknown as API.Delegation,
  }) as unknown as API.Source

describe('leanParser of each Storacha capability', () => {
  for (const stock of STORACHA_CAPABILITIES) {
    // The copy is made inside each test (not while the file is collected), so that a fault in
    // making it fails these tests rather than the file's import (mutation testing sees the former).
    const p = stock as unknown as API.TheCapabilityParser<API.Match<API.ParsedCapability>>
    const copy = () => leanParser(stock) as unknown as API.TheCapabilityParser<API.Match<API.ParsedCapability>>
    const inputs = NB[stock.can]!

    test(`${stock.can}: match (the probe's parse) gives the same result on every input`, () => {
      const l = copy()
      let refused = 0
      for (const nb of inputs) {
        for (const with_ of [SPACE, 'did:web:example.com', 'ucan:*']) {
          for (const can of [stock.can, 'space/other']) {
            const a = describeMatch(p.match(source(can, with_, nb)) as never)
            const b = describeMatch(l.match(source(can, with_, nb)) as never)
            expect(b).toEqual(a)
            if ((a as { error?: string }).error !== undefined) refused++
          }
        }
      }
      // Both refuse some inputs (the comparison covers refusals, not only acceptances).
      expect(refused).toBeGreaterThan(0)
      expect(l.can).toBe(stock.can)
    })

    test(`${stock.can}: select (sources offered to a claim) gives the same matches, escalations and errors`, () => {
      const l = copy()
      for (const claimed of inputs) {
        const pm = p.match(source(stock.can, SPACE, claimed))
        const lm = l.match(source(stock.can, SPACE, claimed))
        if (pm.error) {
          expect(lm.error?.message).toBe(pm.error.message)
          continue
        }
        const sources = [
          ...inputs.map((nb) => source(stock.can, SPACE, nb)),
          ...inputs.map((nb) => source(stock.can, 'ucan:*', nb)),
          source('*', SPACE, undefined),
          source('space/*', SPACE, {}),
          source(stock.can, 'did:key:other', {}),
          source('store/add', SPACE, {}),
        ]
        expect(describeSelect(lm.ok!.select(sources) as never)).toEqual(describeSelect(pm.ok.select(sources) as never))
      }
    })
  }
})

describe('leanOptional and leanStruct', () => {
  test('an absent optional caveat is not read by its inner schema; a present one is, with its own answer', () => {
    const calls: unknown[] = []
    const inner = Schema.link()
    const spy = Object.assign(Object.create(Object.getPrototypeOf(inner)), inner, {
      read: (input: unknown) => (calls.push(input), inner.read(input)),
    })
    const lean = leanOptional(Schema.optional(spy))
    // Asked once, when the copy is made, whether the inner schema fails on undefined.
    expect(calls).toEqual([undefined])
    calls.length = 0
    expect(lean.read(undefined)).toEqual({ ok: undefined })
    expect(calls).toEqual([])
    expect(lean.read(undefined).error).toBeUndefined()
    const bad = lean.read('x')
    expect(bad.error?.message).toBe(Schema.link().optional().read('x').error?.message)
    expect(calls).toEqual(['x'])
    expect(lean.read(car)).toEqual({ ok: car })
  })

  test("the lean optional describes itself as ucanto's optional does (toString), and its optional() is itself", () => {
    const inners = [Schema.link(), Schema.link().array(), Schema.string(), Schema.struct({ a: Schema.integer() })] as API.Reader<unknown, unknown>[]
    for (const inner of inners) {
      const stock = Schema.optional(inner)
      const lean = leanOptional(stock)
      expect(lean).not.toBe(stock)
      expect(String(lean)).toBe(String(stock))
      expect(lean.toString()).toBe(`${String(inner)}.optional()`)
      // Optional of optional is the same schema, as in ucanto (`Optional.optional()` returns this).
      expect(stock.optional()).toBe(stock)
      expect(lean.optional()).toBe(lean)
    }
  })

  test('an optional whose inner schema accepts undefined, and any other schema, are left as they are', () => {
    const withDefault = Schema.integer().default(3).optional()
    expect(leanOptional(withDefault)).toBe(withDefault)
    const plain = Schema.string()
    expect(leanOptional(plain)).toBe(plain)
    expect(leanStruct(plain)).toBe(plain)
  })

  test('a lean struct reads as the original: fields in order, first failing member, undefined left out', () => {
    const stock = Schema.struct({ a: Schema.link().optional(), b: Schema.string(), c: Schema.link().array().optional() })
    const lean = leanStruct(stock)
    expect(lean).not.toBe(stock)
    for (const input of [{ b: 'x' }, { a: car, b: 'x' }, { a: 'no', b: 1 }, { b: 1, c: 'no' }, { b: 'x', c: [car] }, { b: 'x', c: ['no'] }, {}, null, [], 'x']) {
      const a = stock.read(input)
      const b = lean.read(input)
      expect(b.error?.message).toBe(a.error?.message)
      expect(b.error?.name).toBe(a.error?.name)
      expect(b.ok).toEqual(a.ok)
    }
  })
})
