/**
 * The direct receipt encoder (src/ucan/receipt-encoder.ts, issue 11 "lean responses") against
 * ucanto's own path (request-check.ts `encodeResponseWithUcanto`, kept as the reference): for any
 * outcomes the response is the same bytes with the same headers, and ucanto's client decodes it
 * into receipts that name the right invocation, carry the right result and verify under the signer.
 */
import { beforeAll, describe, expect, test } from 'vitest'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import type { API } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import * as CAR from '@ucanto/transport/car'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { parse as parseLink } from 'multiformats/link'
import { createFastSigner } from '../../src/ucan/principal.js'
import { encodeReceiptsCar } from '../../src/ucan/receipt-encoder.js'
import { encodeOutcome } from '../../src/ucan/outcome-cbor.js'
import * as DagCbor from '@ipld/dag-cbor'
import { type AppendOutcome, encodeResponse, encodeResponseWithUcanto } from '../../src/ucan/request-check.js'
import type { AppendResult } from '../../src/ucan/wire.js'
import { pinnedKey } from './helpers.js'

/** The signers a response may be signed by: the service's native one, ucanto's own, and one under a did:web. */
let signers: API.Signer[]
beforeAll(async () => {
  const key = await pinnedKey(5)
  const fast = createFastSigner(key)
  signers = [fast, key, fast.withDID('did:web:ucanlog.example')]
})

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash('sha256').update(bytes).digest())

/**
 * An invocation CID as a string: mostly what the workers send (CIDv1 dag-cbor sha2-256, base32),
 * and, rarer, what the direct path must hand to multiformats: a raw or sha2-512 CID, a CIDv0, and
 * a CIDv1 written in base58btc (parsed, then written in base32 as ucanto writes report keys).
 */
const cidArb = fc
  .tuple(fc.uint8Array({ minLength: 1, maxLength: 16 }), fc.constantFrom('dag-cbor', 'dag-cbor', 'dag-cbor', 'dag-cbor', 'raw', 'sha512', 'v0', 'base58'))
  .map(([seed, kind]) => {
    const digest = Digest.create(0x12, sha256(seed))
    switch (kind) {
      case 'raw':
        return CID.createV1(0x55, digest).toString()
      case 'sha512':
        return CID.createV1(0x71, Digest.create(0x13, new Uint8Array(createHash('sha512').update(seed).digest()))).toString()
      case 'v0':
        return CID.createV0(digest).toString()
      case 'base58':
        return CID.createV1(0x71, digest).toString(base58btc)
      default:
        return CID.createV1(0x71, digest).toString()
    }
  })

/** Strings across the CBOR length heads (23/24, 255/256, 65535/65536 bytes), unicode, lone surrogates. */
const stringArb = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 60 }),
  fc.string({ minLength: 240, maxLength: 300 }),
  fc.constantFrom('', 'x'.repeat(23), 'x'.repeat(24), 'é'.repeat(128), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(65536), '\ud800', 'a\udc00b', '\udbff\udfff', '😀'),
)

/** Integers across the CBOR integer heads, negative ones included (not an index, but encodable). */
const intArb = fc.oneof(
  fc.nat({ max: 100_000 }),
  fc.maxSafeNat(),
  fc.maxSafeInteger(),
  fc.constantFrom(0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, -1, -24, -25, -(2 ** 32) - 1),
)

const base64Hash = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64'))

/** A c2sp.org/tlog-checkpoint note as a log writes one (about 300 bytes with two cosignatures). */
const noteArb = fc
  .tuple(stringArb, fc.nat(), base64Hash, fc.array(fc.uint8Array({ minLength: 68, maxLength: 76 }), { minLength: 1, maxLength: 3 }))
  .map(([origin, size, root, sigs]) => `${origin}\n${size}\n${root}\n\n${sigs.map((s, i) => `— key${i} ${Buffer.from(s).toString('base64')}\n`).join('')}`)

const appendResultArb: fc.Arbitrary<AppendResult> = fc.record({
  logId: stringArb,
  origin: stringArb,
  index: intArb,
  treeSize: intArb,
  rootHash: fc.oneof(base64Hash, stringArb),
  checkpoint: fc.oneof(fc.constant(''), noteArb, stringArb),
  inclusionProof: fc.oneof(fc.constant<string[]>([]), fc.array(base64Hash, { maxLength: 40 }), fc.array(stringArb, { maxLength: 4 })),
  published: fc.boolean(),
})

const resultArb: fc.Arbitrary<AppendOutcome['result']> = fc.oneof(
  { weight: 3, arbitrary: appendResultArb.map((ok) => ({ ok })) },
  { weight: 1, arbitrary: fc.record({ name: stringArb, message: stringArb }).map((error) => ({ error })) },
)

/**
 * 1..16 outcomes whose `ran` comes from a pool (so two outcomes may share one, with different or,
 * through `repeat`, identical results: the same receipt twice).
 */
const outcomesArb: fc.Arbitrary<AppendOutcome[]> = fc
  .tuple(
    fc.array(cidArb, { minLength: 1, maxLength: 16 }),
    fc.array(fc.tuple(fc.nat(), resultArb), { minLength: 1, maxLength: 16 }),
    fc.array(fc.nat(), { maxLength: 3 }),
  )
  .map(([pool, picks, repeat]) => {
    const outcomes = picks.map(([n, result]) => ({ cid: pool[n % pool.length] as string, result }))
    for (const n of repeat) if (outcomes.length < 16) outcomes.push(outcomes[n % outcomes.length] as AppendOutcome)
    return outcomes
  })

const acceptArb = fc.constantFrom('', '*/*', 'application/vnd.ipld.car', 'application/*', 'text/html, application/vnd.ipld.car;q=0.5')

/** Every string of `value` as it comes back from UTF-8 (a lone surrogate is U+FFFD on the wire). */
function wellFormed(value: unknown): unknown {
  if (typeof value === 'string') return Buffer.from(value, 'utf8').toString('utf8')
  if (Array.isArray(value)) return value.map(wellFormed)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, wellFormed(v)]))
  return value
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))

/**
 * Asserts that the direct encoder and `encodeResponse` give ucanto's response for `outcomes`:
 * the same body bytes and the same headers. Returns `encodeResponse`'s response.
 */
async function expectUcantoBytes(outcomes: AppendOutcome[], headers: Record<string, string>, signer: API.Signer): Promise<API.HTTPResponse> {
  const reference = await encodeResponseWithUcanto(outcomes, headers, signer)
  const direct = await encodeReceiptsCar(outcomes, signer)
  expect(direct).toBeDefined()
  expect(same(direct as Uint8Array, reference.body)).toBe(true)
  const response = await encodeResponse(outcomes, headers, signer)
  expect(response.headers).toEqual(reference.headers)
  expect(same(response.body, reference.body)).toBe(true)
  return response
}

describe('the direct receipt encoder', () => {
  test("property: the same response bytes and headers as ucanto's path, decoding to verified receipts of the inputs", async () => {
    let shared = 0
    await fc.assert(
      fc.asyncProperty(outcomesArb, fc.nat({ max: 2 }), acceptArb, async (outcomes, s, accept) => {
        const signer = signers[s] as API.Signer
        const headers = { 'content-type': CAR.contentType, accept }
        const response = await expectUcantoBytes(outcomes, headers, signer)

        // ucanto's client reads it: one receipt per invocation (the first outcome of each), signed by `signer`.
        const message = (await CAR.outbound.decode({ headers: response.headers, body: response.body, status: 200 } as never)) as API.AgentMessage
        const first = new Map<string, AppendOutcome>()
        for (const o of outcomes) {
          const key = parseLink(o.cid).toString()
          if (!first.has(key)) first.set(key, o)
        }
        if (first.size < outcomes.length) shared++
        expect(message.receipts.size).toBe(first.size)
        for (const [key, o] of first) {
          const receipt = message.get(parseLink(key)) as API.Receipt
          expect(receipt.ran.link().toString()).toBe(key)
          expect(receipt.out).toEqual(wellFormed(o.result.error ? { error: { name: o.result.error.name, message: o.result.error.message } } : { ok: o.result.ok }))
          expect(receipt.issuer?.did()).toBe(signer.did())
          expect((await receipt.verifySignature(signer.verifier)).ok).toBeDefined()
        }
      }),
      { numRuns: 300, seed: 0x7ece1 },
    )
    // The runs did cover invocations answered twice in one response.
    expect(shared).toBeGreaterThan(20)
  })

  test("a result outside plain JSON-like data (a float, -0, undefined, a Date, class instances with and without toJSON, a Map) is encoded as ucanto's CBOR.encode prepares it: ucanto's bytes", async () => {
    const base: AppendResult = { logId: 'did:key:z', origin: 'o', index: 1, treeSize: 2, rootHash: 'r', checkpoint: '', inclusionProof: [], published: false }
    const cid = CID.createV1(0x71, Digest.create(0x12, sha256(new Uint8Array([1])))).toString()
    class WithToJSON {
      readonly hidden = 1
      toJSON() {
        return 'shown'
      }
    }
    class Plainish {
      readonly a = 1
    }
    const odd: unknown[] = [1.5, -0, undefined, new Date(0), [1, undefined], new WithToJSON(), new Plainish(), new Map([['a', 1]]), { nested: [new WithToJSON()] }]
    for (const value of odd) {
      const outcomes = [{ cid, result: { ok: { ...base, index: value } as never } }]
      const signer = signers[0] as API.Signer
      await expectUcantoBytes(outcomes, { 'content-type': CAR.contentType, accept: '*/*' }, signer)
    }
  })

  test("no outcome (ucanto then writes no report) goes to ucanto's path, with ucanto's bytes", async () => {
    const signer = signers[0] as API.Signer
    const headers = { 'content-type': CAR.contentType, accept: '*/*' }
    expect(await encodeReceiptsCar([], signer)).toBeUndefined()
    const reference = await encodeResponseWithUcanto([], headers, signer)
    const response = await encodeResponse([], headers, signer)
    expect(same(response.body, reference.body)).toBe(true)
  })

  test('an accept header no encoder serves, or a ran that is not a CID, throws as before', async () => {
    const signer = signers[0] as API.Signer
    const ok: AppendOutcome['result'] = { error: { name: 'X', message: 'y' } }
    const cid = CID.createV1(0x71, Digest.create(0x12, sha256(new Uint8Array([2])))).toString()
    const json = { 'content-type': CAR.contentType, accept: 'application/json' }
    await expect(encodeResponse([{ cid, result: ok }], json, signer)).rejects.toThrow()
    await expect(encodeResponseWithUcanto([{ cid, result: ok }], json, signer)).rejects.toThrow()
    const car = { 'content-type': CAR.contentType, accept: '*/*' }
    await expect(encodeResponse([{ cid: 'not a cid', result: ok }], car, signer)).rejects.toThrow()
    await expect(encodeResponseWithUcanto([{ cid: 'not a cid', result: ok }], car, signer)).rejects.toThrow()
  })
})

describe("the outcome's direct DAG-CBOR writer (outcome-cbor.ts)", () => {
  /** The outcome as receipt-encoder.ts hands it to the general encoder. */
  const general = (ran: CID, out: unknown, iss: string) => DagCbor.encode({ ran, out, fx: { fork: [] }, meta: {}, iss, prf: [] })

  test("property: @ipld/dag-cbor's bytes whenever it writes, and it writes every outcome of well-formed strings and counts", () => {
    let written = 0
    let left = 0
    fc.assert(
      fc.property(cidArb, resultArb, stringArb, (cid, result, iss) => {
        const ran = parseLink(cid) as unknown as CID
        const out = result.error ? { error: { name: result.error.name, message: result.error.message } } : { ok: result.ok }
        const direct = encodeOutcome(ran, out, iss)
        const strings = [iss, ...(result.error ? [result.error.name, result.error.message] : [result.ok.logId, result.ok.origin, result.ok.rootHash, result.ok.checkpoint, ...result.ok.inclusionProof])]
        const wellFormed = strings.every((x) => Buffer.from(x, 'utf8').toString('utf8') === x)
        const counts = result.error !== undefined || [result.ok.index, result.ok.treeSize].every((n) => Number.isSafeInteger(n) && n >= 0)
        // It declines exactly what it does not write: a lone surrogate or a number that is not a count.
        expect(direct !== undefined).toBe(wellFormed && counts)
        if (direct === undefined) {
          left++
          return
        }
        written++
        expect(same(direct, general(ran, out, iss))).toBe(true)
      }),
      { numRuns: 2000, seed: 0x0c0b },
    )
    expect(written).toBeGreaterThan(1000)
    expect(left).toBeGreaterThan(50)
  })

  test('declines another shape: an extra or missing key, a class instance, a hole in the proof, a float, -0, a non-boolean published', () => {
    const ran = CID.createV1(0x71, Digest.create(0x12, sha256(new Uint8Array([3]))))
    const ok: AppendResult = { logId: 'did:key:z', origin: 'o', index: 1, treeSize: 2, rootHash: 'r', checkpoint: 'c', inclusionProof: ['a', 'b'], published: true }
    expect(encodeOutcome(ran, { ok }, 'did:key:s')).toBeDefined()
    class Result {
      constructor(readonly o: AppendResult) {}
    }
    const hole = ['a', 'b']
    delete hole[0]
    const odd: unknown[] = [
      { ...ok, extra: 1 },
      { ...ok, published: undefined },
      Object.assign(Object.create({ index: 1 }), { ...ok, index: undefined }),
      new Result(ok),
      { ...ok, inclusionProof: hole },
      { ...ok, index: 1.5 },
      { ...ok, treeSize: -0 },
      { ...ok, published: 1 },
    ]
    for (const value of odd) expect(encodeOutcome(ran, { ok: value as AppendResult }, 'did:key:s')).toBeUndefined()
    expect(encodeOutcome(ran, { error: { name: 'X', message: 'y', stack: 'z' } as never }, 'did:key:s')).toBeUndefined()
    expect(encodeOutcome(ran, { ok, error: { name: 'X', message: 'y' } } as never, 'did:key:s')).toBeUndefined()
  })
})
