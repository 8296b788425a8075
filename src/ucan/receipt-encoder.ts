/**
 * The response CAR of an RPC request, encoded directly (issue 11, "lean responses"): one ucanto
 * receipt per `tlog/append` outcome and the agent message reporting them, byte for byte what
 * ucanto writes (@ucanto/core 10 `receipt.js` `ReceptBuilder.buildIPLDView`, `message.js`
 * `MessageBuilder`, @ucanto/transport 9 `car/response.js` `encode`), but each CBOR value encoded
 * once and straight into bytes: ucanto encodes the outcome to sign it, then again inside
 * `{ ocm, sig }`, and builds block stores, views and links on the way. This takes about a third
 * of ucanto's CPU per receipt, most of it the signature (bench/receipt-encoder.js);
 * test/ucan/receipt-encoder.test.ts checks the bytes against ucanto's own path.
 *
 * What is written (DAG-CBOR: shortest heads, map keys sorted by length then bytewise):
 * - outcome `{ fx: { fork: [] }, iss, out, prf: [], ran, meta: {} }`, `out` being `{ ok: result }`
 *   or `{ error: { name, message } }` (what request-check.ts `WireFailure.toJSON` gives), `ran` the
 *   invocation's link, `iss` the signer's DID;
 * - the signature: `signer.sign(outcome bytes)`, ucanto's varsig `Signature` bytes;
 * - the receipt block `{ ocm: <outcome bytes spliced in>, sig: <signature> }` under its CIDv1
 *   dag-cbor sha2-256;
 * - the message block `{ 'ucanto/message@7.0.0': { report: { <ran as string>: <receipt link> } } }`,
 *   the first receipt of each `ran` when two outcomes share one (ucanto's `writeReceipts`);
 * - a CARv1 whose one root is the message: the receipt blocks in outcome order, each distinct
 *   block once, then the message block (the order ucanto's CAR writer keeps).
 *
 * Results are encoded as ucanto's `CBOR.encode` would only when they are plain JSON-like data:
 * strings, booleans, null, safe integers other than -0, arrays and plain objects with ASCII keys
 * (none `/` or `__proto__`), at most {@link MAX_DEPTH} deep. Anything else (a float, `undefined`,
 * an object with `toJSON`, bytes, a link) is left to ucanto: {@link encodeReceiptsCar} answers
 * `undefined`. A wire `AppendResult` and a `FailureJSON` are always plain data.
 */
import { createHash } from 'node:crypto'
import type { API } from '@ucanto/core'
import { parse as parseLink } from 'multiformats/link'
import type { AppendOutcome } from './request-check.js'

/** Deepest nesting of a result encoded here (deeper, or a cycle: ucanto's path decides). */
const MAX_DEPTH = 32

/** Multicodec of dag-cbor, the code of every CID written here. */
const DAG_CBOR = 0x71
/** Multicodec of sha2-256 and its digest length, in bytes. */
const SHA2_256 = 0x12
const SHA2_256_BYTES = 32
/** Length of a CIDv1 dag-cbor sha2-256, in bytes (version, codec, hash code, digest length, digest). */
const CID_BYTES = 4 + SHA2_256_BYTES

/** CBOR major types (RFC 8949 §3.1). */
const UINT = 0
const NEGINT = 1
const BYTES = 2
const TEXT = 3
const ARRAY = 4
const MAP = 5
/** CBOR simple values and the tag-42 head of an IPLD link (DAG-CBOR spec, "Links"). */
const FALSE = 0xf4
const TRUE = 0xf5
const NULL = 0xf6
const TAG_42 = [0xd8, 0x2a] as const

/** Size of the scratch buffer, in bytes: it grows for a larger value and is given back to this size after the response. */
const SCRATCH_BYTES = 16 * 1024

/** A writer of DAG-CBOR into one growing scratch buffer (reused: every use is synchronous). */
class CborWriter {
  buf = Buffer.allocUnsafeSlow(SCRATCH_BYTES)
  pos = 0

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(grown, 0, 0, this.pos)
    this.buf = grown
  }

  byte(b: number): void {
    this.reserve(1)
    this.buf[this.pos++] = b
  }

  raw(bytes: ArrayLike<number>): void {
    this.reserve(bytes.length)
    this.buf.set(bytes, this.pos)
    this.pos += bytes.length
  }

  /** The head of major type `major` with argument `n` (a safe non-negative integer), in its shortest form. */
  head(major: number, n: number): void {
    this.reserve(9)
    const b = this.buf
    const m = major << 5
    if (n < 24) b[this.pos++] = m | n
    else if (n < 0x100) {
      b[this.pos++] = m | 24
      b[this.pos++] = n
    } else if (n < 0x10000) {
      b[this.pos++] = m | 25
      this.pos = b.writeUInt16BE(n, this.pos)
    } else if (n < 0x1_0000_0000) {
      b[this.pos++] = m | 26
      this.pos = b.writeUInt32BE(n, this.pos)
    } else {
      b[this.pos++] = m | 27
      this.pos = b.writeUInt32BE(Math.floor(n / 0x1_0000_0000), this.pos)
      this.pos = b.writeUInt32BE(n >>> 0, this.pos)
    }
  }

  /** A text string, UTF-8 (a lone surrogate as U+FFFD, as cborg writes it). */
  text(s: string): void {
    const n = Buffer.byteLength(s, 'utf8')
    this.head(TEXT, n)
    this.reserve(n)
    this.pos += this.buf.write(s, this.pos, n, 'utf8')
  }

  /** An IPLD link: tag 42 over the CID's bytes behind a 0x00 (the multibase identity prefix). */
  link(cid: Uint8Array): void {
    this.raw(TAG_42)
    this.head(BYTES, cid.length + 1)
    this.byte(0)
    this.raw(cid)
  }

  /** A copy of what was written since `from`. */
  take(from = 0): Uint8Array {
    return new Uint8Array(this.buf.subarray(from, this.pos))
  }
}

const scratch = new CborWriter()

const ASCII = /^[\x00-\x7f]*$/

/** DAG-CBOR key order for ASCII keys: shorter first, then bytewise. */
const byKeyOrder = (a: string, b: string): number => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)

/** Writes `value` as described in the module comment; false (the writer's bytes then meaningless) if it is not plain data. */
function writeValue(w: CborWriter, value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
      w.text(value)
      return true
    case 'boolean':
      w.byte(value ? TRUE : FALSE)
      return true
    case 'number':
      if (!Number.isSafeInteger(value) || Object.is(value, -0)) return false
      if (value >= 0) w.head(UINT, value)
      else w.head(NEGINT, -1 - value)
      return true
    case 'object': {
      if (value === null) {
        w.byte(NULL)
        return true
      }
      if (depth >= MAX_DEPTH) return false
      if (Array.isArray(value)) {
        w.head(ARRAY, value.length)
        for (let i = 0; i < value.length; i++) if (!writeValue(w, value[i], depth + 1)) return false
        return true
      }
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) return false
      const record = value as Record<string, unknown>
      // ucanto's encoder would call it.
      if (typeof record.toJSON === 'function') return false
      const keys = Object.keys(record)
      for (const key of keys) if (key === '/' || key === '__proto__' || !ASCII.test(key)) return false
      keys.sort(byKeyOrder)
      w.head(MAP, keys.length)
      for (const key of keys) {
        w.text(key)
        if (!writeValue(w, record[key], depth + 1)) return false
      }
      return true
    }
    default:
      return false
  }
}

/** Base32 (RFC 4648, lower case, no padding) value of each character code; -1 if none. */
const BASE32 = new Int8Array(128).fill(-1)
for (const [i, c] of [...'abcdefghijklmnopqrstuvwxyz234567'].entries()) BASE32[c.charCodeAt(0)] = i

/**
 * The bytes of `cid` when it is the canonical base32 string of a CIDv1 with a one-byte codec and a
 * sha2-256 digest (what the workers send: multiformats would parse it to these bytes and print it
 * back unchanged), else undefined.
 */
function canonicalCidBytes(cid: string): Uint8Array | undefined {
  // 'b' and 58 characters: 290 bits, the 288 of 36 bytes and 2 that must be 0.
  if (cid.length !== 59 || cid.charCodeAt(0) !== 0x62) return undefined
  const out = new Uint8Array(CID_BYTES)
  let buffer = 0
  let bits = 0
  let n = 0
  for (let i = 1; i < 59; i++) {
    const c = cid.charCodeAt(i)
    const v = c < 128 ? (BASE32[c] as number) : -1
    if (v < 0) return undefined
    buffer = (buffer << 5) | v
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out[n++] = buffer >> bits
      buffer &= (1 << bits) - 1
    }
  }
  if (buffer !== 0) return undefined
  return out[0] === 1 && (out[1] as number) < 0x80 && out[2] === SHA2_256 && out[3] === SHA2_256_BYTES ? out : undefined
}

/** The invocation link of an outcome: its bytes and its string (ucanto's report key, the link's `toString()`). */
function ranOf(cid: string): { bytes: Uint8Array; key: string } {
  const bytes = canonicalCidBytes(cid)
  if (bytes !== undefined) return { bytes, key: cid }
  const link = parseLink(cid)
  return { bytes: link.bytes, key: link.toString() }
}

/** CIDv1 dag-cbor sha2-256 of a block, as bytes. */
function cidOf(block: Uint8Array): Uint8Array {
  const cid = new Uint8Array(CID_BYTES)
  cid.set([1, DAG_CBOR, SHA2_256, SHA2_256_BYTES])
  cid.set(createHash('sha256').update(block).digest(), 4)
  return cid
}

/** Length of `n`'s unsigned LEB128 varint (multiformats unsigned-varint), in bytes. */
function varintLength(n: number): number {
  let length = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    length++
  }
  return length
}

/** Writes `n` as an unsigned LEB128 varint into `out` at `pos`; the position after it. */
function writeVarint(out: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) {
    out[pos++] = (n & 0x7f) | 0x80
    n = Math.floor(n / 0x80)
  }
  out[pos++] = n
  return pos
}

/** A short ASCII text string (under 24 bytes: a one-byte head), as bytes. */
const key = (s: string): number[] => [(TEXT << 5) | s.length, ...Buffer.from(s, 'latin1')]
/** Map(6) and the fixed outcome fields before `out` (see the module comment's key order): `fx: { fork: [] }`, then the `iss` key. */
const OUTCOME_HEAD = [(MAP << 5) | 6, ...key('fx'), (MAP << 5) | 1, ...key('fork'), ARRAY << 5, ...key('iss')]
/** The `out` key and map(1) (`ok` or `error`). */
const OUT_HEAD = [...key('out'), (MAP << 5) | 1]
/** `prf: []`, then the `ran` key. */
const PRF_RAN = [...key('prf'), ARRAY << 5, ...key('ran')]
/** `meta: {}`, the outcome's last field. */
const META = [...key('meta'), MAP << 5]
/** Map(2) and the `ocm` key: what precedes the outcome in a receipt block. */
const RECEIPT_HEAD = [(MAP << 5) | 2, ...key('ocm')]
const SIG_KEY = key('sig')
/** Map(1) `ucanto/message@7.0.0`: map(1) `report`: what precedes the report map in the message block. */
const MESSAGE_HEAD = [(MAP << 5) | 1, ...key('ucanto/message@7.0.0'), (MAP << 5) | 1, ...key('report')]

/** The DAG-CBOR outcome of `o` signed by `issuer`, or undefined when its result is not plain data. */
function encodeOutcome(o: AppendOutcome, ran: Uint8Array, issuer: string): Uint8Array | undefined {
  const w = scratch
  w.pos = 0
  w.raw(OUTCOME_HEAD)
  w.text(issuer)
  w.raw(OUT_HEAD)
  if (o.result.error) {
    w.text('error')
    if (!writeValue(w, { name: o.result.error.name, message: o.result.error.message }, 1)) return undefined
  } else {
    w.text('ok')
    if (!writeValue(w, o.result.ok, 1)) return undefined
  }
  w.raw(PRF_RAN)
  w.link(ran)
  w.raw(META)
  return w.take()
}

/** The receipt block `{ ocm, sig }` around already-encoded outcome bytes. */
function receiptBlock(outcome: Uint8Array, signature: Uint8Array): Uint8Array {
  const w = scratch
  w.pos = 0
  w.raw(RECEIPT_HEAD)
  w.raw(outcome)
  w.raw(SIG_KEY)
  w.head(BYTES, signature.length)
  w.raw(signature)
  return w.take()
}

/** The message block reporting `report` (ran string → receipt CID bytes). */
function messageBlock(report: Map<string, Uint8Array>): Uint8Array {
  const w = scratch
  w.pos = 0
  w.raw(MESSAGE_HEAD)
  w.head(MAP, report.size)
  for (const key of [...report.keys()].sort(byKeyOrder)) {
    w.text(key)
    w.link(report.get(key) as Uint8Array)
  }
  return w.take()
}

/** The CARv1 header `{ roots: [root], version: 1 }`, with its varint length in front. */
function carHeader(root: Uint8Array): Uint8Array {
  const w = scratch
  w.pos = 0
  w.head(MAP, 2)
  w.text('roots')
  w.head(ARRAY, 1)
  w.link(root)
  w.text('version')
  w.head(UINT, 1)
  const header = w.take()
  const out = new Uint8Array(varintLength(header.length) + header.length)
  out.set(header, writeVarint(out, 0, header.length))
  return out
}

/**
 * The body of ucanto's CAR response (@ucanto/transport `CAR.response.encode` of `Message.build`
 * over one `Receipt.issue` per outcome: `ran` the outcome's `cid`, `out` its result, signed by
 * `signer`), encoded directly as the module comment says: the same bytes. Answers `undefined`
 * (ucanto's path then encodes the response) when there is no outcome (ucanto then writes no
 * `report`), when a result is not plain data (before signing anything), or when a signature is
 * not bytes.
 * @throws as ucanto's path would when an outcome's `cid` is not a CID (multiformats' parse error),
 * and whatever `signer.sign` throws.
 */
export async function encodeReceiptsCar(outcomes: readonly AppendOutcome[], signer: API.Signer): Promise<Uint8Array | undefined> {
  if (outcomes.length === 0) return undefined
  const issuer = signer.did()
  const rans: { bytes: Uint8Array; key: string }[] = []
  const outcomeBytes: Uint8Array[] = []
  for (const o of outcomes) {
    const ran = ranOf(o.cid)
    const bytes = encodeOutcome(o, ran.bytes, issuer)
    if (bytes === undefined) return undefined
    rans.push(ran)
    outcomeBytes.push(bytes)
  }
  const signatures = await Promise.all(outcomeBytes.map((bytes) => signer.sign(bytes)))
  // Each distinct receipt block once, in outcome order; the report names the first receipt of each ran.
  const blocks: { cid: Uint8Array; bytes: Uint8Array }[] = []
  const written = new Set<string>()
  const report = new Map<string, Uint8Array>()
  for (let i = 0; i < outcomeBytes.length; i++) {
    const signature = signatures[i] as Uint8Array
    if (!(signature instanceof Uint8Array)) return undefined
    const bytes = receiptBlock(outcomeBytes[i] as Uint8Array, signature)
    const cid = cidOf(bytes)
    const id = Buffer.from(cid.buffer, cid.byteOffset, cid.byteLength).toString('latin1')
    if (!written.has(id)) {
      written.add(id)
      blocks.push({ cid, bytes })
    }
    const key = (rans[i] as { key: string }).key
    if (!report.has(key)) report.set(key, cid)
  }
  const message = messageBlock(report)
  const root = cidOf(message)
  blocks.push({ cid: root, bytes: message })
  const header = carHeader(root)
  if (scratch.buf.length > SCRATCH_BYTES) scratch.buf = Buffer.allocUnsafeSlow(SCRATCH_BYTES)
  let size = header.length
  for (const b of blocks) {
    const length = b.cid.length + b.bytes.length
    size += varintLength(length) + length
  }
  const car = new Uint8Array(size)
  car.set(header)
  let pos = header.length
  for (const b of blocks) {
    pos = writeVarint(car, pos, b.cid.length + b.bytes.length)
    car.set(b.cid, pos)
    car.set(b.bytes, pos + b.cid.length)
    pos += b.cid.length + b.bytes.length
  }
  return car
}
