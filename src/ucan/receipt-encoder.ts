/**
 * The response CAR of an RPC request, built directly (issue 11, "lean responses"): one ucanto
 * receipt per `tlog/append` outcome and the agent message reporting them, byte for byte what
 * ucanto writes (@ucanto/core 10 `receipt.js` `ReceptBuilder.buildIPLDView`, `message.js`
 * `MessageBuilder`, @ucanto/transport 9 `car/response.js` `encode`), with ucanto's own CBOR
 * encoder and @ipld/car's writer, but each value encoded once: ucanto encodes the outcome to sign
 * it and then again inside `{ ocm, sig }`, and builds block stores, views and schema-checked
 * links on the way. About two thirds of ucanto's CPU per receipt (bench/receipt-encoder.js: 107
 * against 176 µs at one receipt per response, 79 against 117 at 16); test/ucan/receipt-encoder.test.ts
 * checks the bytes against ucanto's own path.
 *
 * What is written:
 * - the outcome `{ ran, out, fx: { fork: [] }, meta: {}, iss, prf: [] }` (ucanto's model: `out`
 *   is `{ ok: result }` or `{ error: { name, message } }`, `ran` the invocation's link, `iss` the
 *   signer's DID), encoded by ucanto's `CBOR.encode` (DAG-CBOR after ucanto's own preparation of
 *   `undefined`, `toJSON` and the like), and signed: `signer.sign(outcome bytes)`;
 * - the receipt block `{ ocm, sig }` under its CIDv1 dag-cbor sha2-256. DAG-CBOR writes a map as
 *   its head and its entries in key order (`ocm` before `sig`: same length, then bytewise), each
 *   value encoded as it would be alone, so the block is the map(2) head, the encoded key `ocm`, the
 *   outcome's bytes already signed, the encoded key `sig` and the encoded signature;
 * - the message block `{ 'ucanto/message@7.0.0': { report: { <ran>: <receipt link> } } }`, the
 *   first receipt of each `ran` when two outcomes share one (ucanto's `writeReceipts`);
 * - a CARv1 whose one root is the message: the receipt blocks in outcome order, each distinct
 *   block once, then the message block (the order of ucanto's CAR writer).
 */
import { createHash } from 'node:crypto'
import * as CarBufferWriter from '@ipld/car/buffer-writer'
import * as DagCbor from '@ipld/dag-cbor'
import { CBOR } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { parse as parseLink } from 'multiformats/link'
import { encodeOutcome } from './outcome-cbor.js'
import type { AppendOutcome } from './request-check.js'

/** Multicodecs of dag-cbor and sha2-256, the codec and hash of every block written here. */
const DAG_CBOR = 0x71
const SHA2_256 = 0x12

/** DAG-CBOR's head of a map of two entries (RFC 8949 §3.1: major type 5, argument 2). */
const MAP_OF_TWO = 0xa2
/** The encoded keys of a receipt block, in DAG-CBOR key order. */
const OCM_KEY = CBOR.encode('ocm')
const SIG_KEY = CBOR.encode('sig')

/** CIDv1 dag-cbor sha2-256 of a block (node:crypto's SHA-256). */
function cidOf(block: Uint8Array): CID {
  return CID.createV1(DAG_CBOR, Digest.create(SHA2_256, createHash('sha256').update(block).digest()))
}

/**
 * Whether ucanto's preparation before DAG-CBOR (@ucanto/core `cbor.js` `prepare`: drops
 * `undefined` and symbols, calls `toJSON`, copies objects of any class as plain ones) leaves
 * `value` as it is: strings, numbers, booleans, null, CIDs and byte arrays, and arrays and
 * plain objects (prototype `Object.prototype` or null, no `toJSON`) of those, at most 64 deep.
 */
function isPlain(value: unknown, depth = 0): boolean {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      return true
    case 'object': {
      if (value === null || value instanceof Uint8Array || value instanceof CID) return true
      if (depth > 64) return false
      if (Array.isArray(value)) return value.every((v) => isPlain(v, depth + 1))
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) return false
      if ('toJSON' in value) return false
      for (const v of Object.values(value)) if (!isPlain(v, depth + 1)) return false
      return true
    }
    default:
      return false
  }
}

/**
 * ucanto's `CBOR.encode(value)`, byte for byte: @ipld/dag-cbor's encoding, straight when ucanto's
 * preparation would leave `value` as it is ({@link isPlain}: every wire result), else ucanto's own.
 */
function encode(value: unknown): Uint8Array {
  return isPlain(value) ? DagCbor.encode(value) : CBOR.encode(value)
}

/** The receipt block `{ ocm, sig }` around already-encoded outcome bytes (see the module comment). */
function receiptBlock(outcome: Uint8Array, signature: Uint8Array): Uint8Array {
  return Buffer.concat([Uint8Array.of(MAP_OF_TWO), OCM_KEY, outcome, SIG_KEY, DagCbor.encode(signature)])
}

/**
 * The body of ucanto's CAR response (@ucanto/transport `CAR.response.encode` of `Message.build`
 * over one `Receipt.issue` per outcome: `ran` the outcome's `cid`, `out` its result, signed by
 * `signer`), built as the module comment says: the same bytes. Answers `undefined` when there is
 * no outcome (ucanto then writes no `report`; its own path encodes that).
 * @throws what ucanto's path throws: multiformats' parse error for an outcome `cid` that is not a
 * CID, ucanto's CBOR error for a result it cannot encode (a cycle, a function), and whatever
 * `signer.sign` throws.
 */
export async function encodeReceiptsCar(outcomes: readonly AppendOutcome[], signer: API.Signer): Promise<Uint8Array | undefined> {
  if (outcomes.length === 0) return undefined
  const iss = signer.did()
  const rans = outcomes.map((o) => parseLink(o.cid))
  const outcomeBytes = outcomes.map((o, i) => {
    const out = o.result.error ? { error: { name: o.result.error.name, message: o.result.error.message } } : { ok: o.result.ok }
    const ran = rans[i] as CID
    return encodeOutcome(ran, out, iss) ?? encode({ ran, out, fx: { fork: [] }, meta: {}, iss, prf: [] })
  })
  const signatures = await Promise.all(outcomeBytes.map((bytes) => signer.sign(bytes)))
  // Each distinct receipt block once, in outcome order; the report names the first receipt of each ran.
  const blocks: { cid: CID; bytes: Uint8Array }[] = []
  const written = new Set<string>()
  const report: Record<string, CID> = {}
  for (let i = 0; i < outcomes.length; i++) {
    const bytes = receiptBlock(outcomeBytes[i] as Uint8Array, signatures[i] as Uint8Array)
    const cid = cidOf(bytes)
    const id = cid.toString()
    if (!written.has(id)) {
      written.add(id)
      blocks.push({ cid, bytes })
    }
    const key = (rans[i] as CID).toString()
    report[key] ??= cid
  }
  const message = DagCbor.encode({ 'ucanto/message@7.0.0': { report } })
  const root = cidOf(message)
  blocks.push({ cid: root, bytes: message })
  const size = blocks.reduce((n, b) => n + CarBufferWriter.blockLength(b as never), CarBufferWriter.headerLength({ roots: [root as never] }))
  const writer = CarBufferWriter.createWriter(new ArrayBuffer(size), { roots: [root as never] })
  for (const b of blocks) writer.write(b as never)
  return writer.close()
}
