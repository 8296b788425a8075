/**
 * The DAG-CBOR bytes of a receipt's outcome (receipt-encoder.ts) for what this service answers —
 * a `tlog/append` wire result (wire.ts `AppendResult`) or a `{ name, message }` failure — written
 * straight into one buffer, for the response encoder's common case (issue 11, "lean responses").
 * A general encoder (cborg under @ipld/dag-cbor) walks the value, sorts each map's keys and turns
 * each string into a fresh byte array; here the shape is known, so the keys are written in their
 * order once computed by hand and each string is encoded into the buffer where it lands.
 *
 * The bytes are DAG-CBOR's (RFC 8949 §4.2.1 core deterministic encoding, with DAG-CBOR's map key
 * order: shorter keys first, then bytewise; a CID as tag 42 over its bytes behind a 0x00):
 * - the outcome `{ fx: { fork: [] }, iss, out, prf: [], ran, meta: {} }`, in that key order;
 * - `out` is `{ ok: { index, logId, origin, rootHash, treeSize, published, checkpoint,
 *   inclusionProof } }` or `{ error: { name, message } }`, in those key orders.
 *
 * Anything else — another key, a number that is not a safe integer ≥ 0, a string that is not
 * well-formed UTF-16 (a lone surrogate, which encoders differ on) — is left to the general
 * encoder: {@link encodeOutcome} answers undefined. test/ucan/receipt-encoder.test.ts checks the
 * bytes against ucanto's own path for arbitrary outcomes.
 */
import * as DagCbor from '@ipld/dag-cbor'
import type { CID } from 'multiformats/cid'
import type { FailureJSON } from './errors.js'
import type { AppendResult } from './wire.js'

/** CBOR major types (RFC 8949 §3.1) used here. */
const UINT = 0
const BYTES = 2
const TEXT = 3
const ARRAY = 4
const MAP = 5
/** Tag 42 (a CID in DAG-CBOR), head `0xd8 0x2a`. */
const CID_TAG = [0xd8, 0x2a] as const
/** The simple values false and true (RFC 8949 §3.3). */
const FALSE = 0xf4
const TRUE = 0xf5

/** Bytes written in order into one growing buffer. */
class Writer {
  #buf: Buffer
  #pos = 0
  constructor(size: number) {
    this.#buf = Buffer.allocUnsafe(size)
  }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return
    const bigger = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + n))
    this.#buf.copy(bigger, 0, 0, this.#pos)
    this.#buf = bigger
  }

  byte(b: number): void {
    this.#room(1)
    this.#buf[this.#pos++] = b
  }

  bytes(b: Uint8Array): void {
    this.#room(b.length)
    this.#buf.set(b, this.#pos)
    this.#pos += b.length
  }

  /** The head of major type `major` with argument `n` (a safe integer ≥ 0), in its shortest form (RFC 8949 §4.2.1). */
  head(major: number, n: number): void {
    const m = major << 5
    this.#room(9)
    const b = this.#buf
    if (n < 24) {
      b[this.#pos++] = m | n
    } else if (n < 0x100) {
      b[this.#pos++] = m | 24
      b[this.#pos++] = n
    } else if (n < 0x10000) {
      b[this.#pos++] = m | 25
      b.writeUInt16BE(n, this.#pos)
      this.#pos += 2
    } else if (n < 0x100000000) {
      b[this.#pos++] = m | 26
      b.writeUInt32BE(n, this.#pos)
      this.#pos += 4
    } else {
      b[this.#pos++] = m | 27
      b.writeUInt32BE(Math.floor(n / 0x100000000), this.#pos)
      b.writeUInt32BE(n >>> 0, this.#pos + 4)
      this.#pos += 8
    }
  }

  /** A text string (well-formed: checked by the caller). */
  text(s: string): void {
    const n = Buffer.byteLength(s, 'utf8')
    this.head(TEXT, n)
    this.#room(n)
    this.#pos += this.#buf.write(s, this.#pos, n, 'utf8')
  }

  /** A copy of what was written. */
  done(): Buffer {
    return Buffer.from(this.#buf.subarray(0, this.#pos))
  }
}

/** The map keys written here, each encoded once (by @ipld/dag-cbor, as a text string). */
const K = {
  fx: DagCbor.encode('fx'),
  fork: DagCbor.encode('fork'),
  iss: DagCbor.encode('iss'),
  out: DagCbor.encode('out'),
  prf: DagCbor.encode('prf'),
  ran: DagCbor.encode('ran'),
  meta: DagCbor.encode('meta'),
  ok: DagCbor.encode('ok'),
  error: DagCbor.encode('error'),
  name: DagCbor.encode('name'),
  message: DagCbor.encode('message'),
  index: DagCbor.encode('index'),
  logId: DagCbor.encode('logId'),
  origin: DagCbor.encode('origin'),
  rootHash: DagCbor.encode('rootHash'),
  treeSize: DagCbor.encode('treeSize'),
  published: DagCbor.encode('published'),
  checkpoint: DagCbor.encode('checkpoint'),
  inclusionProof: DagCbor.encode('inclusionProof'),
}

/** The keys of an `AppendResult`, as appendResultOf writes them (wire.ts). */
const APPEND_RESULT_KEYS = 8

/** A string that UTF-8 round-trips (no lone surrogate). */
function isText(v: unknown): v is string {
  return typeof v === 'string' && (v as string & { isWellFormed(): boolean }).isWellFormed()
}

/** A safe integer ≥ 0 (an index or a size). */
function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0 && !Object.is(v, -0)
}

/** A plain object (what a structured clone or an object literal makes; or of prototype null): its own keys are all there is. */
function isPlainObject(v: unknown): v is object {
  if (typeof v !== 'object' || v === null) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

/** Whether `ok` is exactly an AppendResult of the types this module writes. */
function isAppendResult(ok: AppendResult): boolean {
  return (
    isPlainObject(ok) &&
    Object.keys(ok).length === APPEND_RESULT_KEYS &&
    isCount(ok.index) &&
    isText(ok.logId) &&
    isText(ok.origin) &&
    isText(ok.rootHash) &&
    isCount(ok.treeSize) &&
    typeof ok.published === 'boolean' &&
    isText(ok.checkpoint) &&
    Array.isArray(ok.inclusionProof) &&
    Object.getPrototypeOf(ok.inclusionProof) === Array.prototype &&
    allText(ok.inclusionProof)
  )
}

/** Every element of `a` (holes included) is a well-formed string. */
function allText(a: readonly unknown[]): boolean {
  for (let i = 0; i < a.length; i++) if (!isText(a[i])) return false
  return true
}

/** Whether `error` is exactly `{ name, message }` of well-formed strings. */
function isFailure(error: FailureJSON): boolean {
  return isPlainObject(error) && Object.keys(error).length === 2 && isText(error.name) && isText(error.message)
}

/**
 * The DAG-CBOR bytes of the outcome `{ ran, out, fx: { fork: [] }, meta: {}, iss, prf: [] }` (see
 * the module comment), or undefined when `out` or `iss` is not of the shape written here.
 */
export function encodeOutcome(ran: CID, out: { ok: AppendResult } | { error: FailureJSON }, iss: string): Uint8Array | undefined {
  if (!isText(iss) || !isPlainObject(out) || Object.keys(out).length !== 1) return undefined
  const ok = 'ok' in out ? out.ok : undefined
  const error = 'error' in out ? out.error : undefined
  if (ok !== undefined ? !isAppendResult(ok) : error === undefined || !isFailure(error)) return undefined
  const w = new Writer(ok !== undefined ? 512 + ok.checkpoint.length + 48 * ok.inclusionProof.length : 256)
  w.head(MAP, 6)
  w.bytes(K.fx)
  w.head(MAP, 1)
  w.bytes(K.fork)
  w.head(ARRAY, 0)
  w.bytes(K.iss)
  w.text(iss)
  w.bytes(K.out)
  w.head(MAP, 1)
  if (ok !== undefined) {
    w.bytes(K.ok)
    w.head(MAP, APPEND_RESULT_KEYS)
    w.bytes(K.index)
    w.head(UINT, ok.index)
    w.bytes(K.logId)
    w.text(ok.logId)
    w.bytes(K.origin)
    w.text(ok.origin)
    w.bytes(K.rootHash)
    w.text(ok.rootHash)
    w.bytes(K.treeSize)
    w.head(UINT, ok.treeSize)
    w.bytes(K.published)
    w.byte(ok.published ? TRUE : FALSE)
    w.bytes(K.checkpoint)
    w.text(ok.checkpoint)
    w.bytes(K.inclusionProof)
    w.head(ARRAY, ok.inclusionProof.length)
    for (const h of ok.inclusionProof) w.text(h)
  } else {
    const e = error as FailureJSON
    w.bytes(K.error)
    w.head(MAP, 2)
    w.bytes(K.name)
    w.text(e.name)
    w.bytes(K.message)
    w.text(e.message)
  }
  w.bytes(K.prf)
  w.head(ARRAY, 0)
  w.bytes(K.ran)
  w.byte(CID_TAG[0])
  w.byte(CID_TAG[1])
  w.head(BYTES, ran.bytes.length + 1)
  w.byte(0) // the multibase identity prefix DAG-CBOR puts before a CID's bytes
  w.bytes(ran.bytes)
  w.bytes(K.meta)
  w.head(MAP, 0)
  return w.done()
}
