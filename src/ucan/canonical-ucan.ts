/**
 * A one-pass, conservative proof that a UCAN block is canonical: that `@ipld/dag-ucan` would
 * re-encode what the block decodes to into exactly the block's bytes. Used by the content-address
 * check (delegation.ts `checkContentAddressed`, preverify.ts) to skip the re-encoding of the
 * common, well-formed UCAN; the re-encoding stays the authority for everything this answers
 * "not certain" for.
 *
 * What decoding then re-encoding changes, and so what a `true` here rules out (DAG-CBOR spec,
 * "Strictness"; dag-ucan 0.9 `codec/cbor.js`, `schema.js`, `did.js`, `signature.js`; dag-cbor
 * and cborg decode/encode options as installed):
 * - DAG-CBOR: definite lengths only; the shortest integer and length heads; map keys text
 *   strings, unique, sorted length-first then bytewise; tag 42 only, over bytes `0x00` + a CID
 *   whose varints are minimal; no floats (dag-cbor writes every float as 64 bits and an integral
 *   one as an int: answered "not certain"); no `undefined` (decoded as null); only false, true,
 *   null as simple values; safe integers only (beyond, BigInt: "not certain"); text strictly
 *   valid UTF-8 and not starting with a byte-order mark (the decoder replaces invalid sequences
 *   and its TextDecoder drops a leading BOM); no map key `__proto__` (a plain-object decoder
 *   drops it) nor `/` (dag-cbor's encoder may take such a map for a CID, and dag-json, which
 *   the signature covers, writes it as it writes a link or bytes); nesting at most
 *   {@link MAX_DEPTH}; nothing after the top-level value.
 * - dag-ucan's shape: a map of exactly `v`, `s`, `att`, `aud`, `exp`, `iss`, `prf` and the
 *   optionals it writes back: `fct` only when a non-empty array of maps, `nnc` only as a string,
 *   `nbf` only as a non-zero integer; `exp` an integer or null; `iss`/`aud` a `did:key` of a
 *   key type dag-ucan knows (minimal varint) or a `did:` method string (varint 0x0d1d + UTF-8);
 *   `s` a signature of a named algorithm, minimal varints, exactly code + size + that many bytes
 *   (a non-standard one then its UTF-8 name); each capability a map whose `can` is `*` or has a
 *   `/` inside and is lowercase ASCII (dag-ucan lower-cases it) and whose `with` is a string
 *   `new URL` accepts; `prf` links; `v` digits `N.N.N`.
 * Anything else — including every form dag-ucan would refuse to decode — answers false.
 */

import { UCAN } from '@ucanto/core'
import type { API } from '@ucanto/core'

/**
 * Whether `ucan`'s block (`ucan.root.bytes`; whether they hash to its CID is the caller's check,
 * verified-ucans.ts `sameBytes`) is the canonical dag-ucan encoding of a UCAN: taken at once when
 * {@link isCanonicalUcanBlock} proves it; otherwise dag-ucan re-encodes `ucan.data` (the
 * authority) and the result must equal the bytes, with {@link isCanonicalSignature} and
 * {@link isCanonicalPrincipal} for `s`, `iss` and `aud`, which dag-ucan writes back as it read
 * them (a trailing byte after an Ed25519 signature still verifies), and no map with a `/` key in
 * `att` or `fct` (dag-json, which the signature covers, writes it as it writes a link or bytes).
 * Without these, a second block, hence a second CID, for the same signed UCAN. False for a
 * JWT-form UCAN or one that does not decode; never throws.
 */
export function isCanonicalUcan(ucan: API.Delegation): boolean {
  const bytes = ucan.root.bytes
  if (isCanonicalUcanBlock(bytes)) return true
  try {
    const data = ucan.data as unknown as { jwt?: unknown; model: Record<'s' | 'iss' | 'aud' | 'att' | 'fct', unknown> }
    if (data.jwt !== undefined) return false
    if (!Buffer.from(UCAN.encode(ucan.data)).equals(bytes)) return false
    const { s, iss, aud, att, fct } = data.model
    return isCanonicalSignature(s) && isCanonicalPrincipal(iss) && isCanonicalPrincipal(aud) && !hasSlashKey([att, fct])
  } catch {
    return false
  }
}

/**
 * Whether a map with a `/` key is anywhere in `value` (decoded dag-cbor: arrays, plain objects,
 * links, bytes, scalars). UCAN 0.9 signs the dag-json of the payload, where such a map and a
 * link (`{"/": "<cid>"}`) or bytes (`{"/": {"bytes": …}}`) are written alike, so the same
 * signature verifies over two blocks. Iterative; links and bytes are not entered.
 */
function hasSlashKey(value: unknown): boolean {
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const v = stack.pop()
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array || (v as { asCID?: unknown }).asCID === v) continue
    if (Array.isArray(v)) {
      for (const item of v) stack.push(item)
      continue
    }
    if (Object.hasOwn(v, '/')) return true
    for (const item of Object.values(v)) stack.push(item)
  }
  return false
}

/**
 * Deepest nesting of arrays and maps accepted: the UCAN map is at depth 1, `att` and `fct` at 2,
 * a capability or fact at 3, a caveat at 4. Deeper answers false (dag-ucan re-encodes it).
 */
export const MAX_DEPTH = 64

/**
 * Largest argument accepted in an 8-byte head: 2^53 − 1 (for major type 1, whose value is
 * −1 − argument, 2^53 − 2): beyond, the decoder answers a BigInt.
 */
const MAX_ARG = Number.MAX_SAFE_INTEGER

// The block being scanned, and the position in it. Module state keeps the scan free of closures
// and allocations; the scan is synchronous, so calls cannot interleave.
let buf: Uint8Array = new Uint8Array(0)
let pos = 0
/** The argument of the last head read by {@link head}. */
let arg = 0

/**
 * Whether `bytes` is certainly the canonical dag-ucan encoding of what it decodes to: true only
 * when `UCAN.encode(UCAN.decode(bytes))` (`@ipld/dag-ucan`) equals `bytes` byte for byte; false
 * when that is not certain (the caller then re-encodes). One pass over the bytes, no decoding
 * into objects; never throws.
 */
export function isCanonicalUcanBlock(bytes: Uint8Array): boolean {
  buf = bytes
  pos = 0
  try {
    return ucan() && pos === buf.length
  } catch {
    return false
  } finally {
    buf = EMPTY
  }
}

const EMPTY = new Uint8Array(0)

/**
 * Whether `s` (a UCAN's signature bytes, dag-ucan's `model.s`) is exactly an algorithm's minimal
 * varint code, the minimal varint size and that many bytes (then, for the non-standard code
 * 0xd000, a well-formed UTF-8 algorithm name). dag-ucan writes `s` back as it read it, so its
 * re-encoding cannot tell a signature with trailing bytes (which still verifies: Ed25519 reads
 * only `size` bytes) from the original; the content-address check asks this as well. False for
 * anything but a Uint8Array; never throws.
 */
export function isCanonicalSignature(s: unknown): boolean {
  return s instanceof Uint8Array && within(s, signatureBody)
}

/**
 * Whether `p` (a UCAN's `iss` or `aud` bytes, dag-ucan's `model.iss`/`model.aud`) is a principal
 * as {@link isCanonicalUcanBlock} accepts it: a known key type's minimal varint and key, or
 * 0x0d1d and a valid UTF-8 method string. dag-ucan writes these back as it read them too.
 * False for anything but a Uint8Array; never throws.
 */
export function isCanonicalPrincipal(p: unknown): boolean {
  return p instanceof Uint8Array && within(p, principalBody)
}

/** Runs `body` over all of `bytes` (as the content of a byte string); whether it accepted exactly all of them. */
function within(bytes: Uint8Array, body: (end: number) => boolean): boolean {
  buf = bytes
  pos = 0
  try {
    return body(bytes.length) && pos === bytes.length
  } catch {
    return false
  } finally {
    buf = EMPTY
  }
}

// Top-level keys as 24-bit numbers of their bytes (1-byte keys: the byte itself).
const K_S = 0x73
const K_V = 0x76
const K_ATT = 0x617474
const K_AUD = 0x617564
const K_EXP = 0x657870
const K_FCT = 0x666374
const K_ISS = 0x697373
const K_NBF = 0x6e6266
const K_NNC = 0x6e6e63
const K_PRF = 0x707266

const MAJOR_UINT = 0
const MAJOR_NEGINT = 1
const MAJOR_BYTES = 2
const MAJOR_TEXT = 3
const MAJOR_ARRAY = 4
const MAJOR_MAP = 5
const MAJOR_TAG = 6
const NULL = 0xf6
/** The CBOR tag of an IPLD link (DAG-CBOR spec, "Links"). */
const CID_TAG = 42

/**
 * Reads a head of major type 0–6 at `pos`: answers its major type and leaves its argument in
 * `arg`, or -1 for major type 7, an indefinite length, a reserved minor, a non-shortest argument,
 * an argument over {@link MAX_ARG}, or a head that runs past the end. A length argument is also
 * checked against the bytes left (`arg` ≤ bytes after the head), since every item takes ≥ 1 byte.
 */
function head(): number {
  if (pos >= buf.length) return -1
  const b = buf[pos++]
  const major = b >> 5
  if (major === 7) return -1
  const minor = b & 31
  if (minor < 24) arg = minor
  else if (minor === 24) {
    if (pos + 1 > buf.length) return -1
    arg = buf[pos]
    pos += 1
    if (arg < 24) return -1
  } else if (minor === 25) {
    if (pos + 2 > buf.length) return -1
    arg = (buf[pos] << 8) | buf[pos + 1]
    pos += 2
    if (arg < 0x100) return -1
  } else if (minor === 26) {
    if (pos + 4 > buf.length) return -1
    arg = buf[pos] * 0x1000000 + ((buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3])
    pos += 4
    if (arg < 0x10000) return -1
  } else if (minor === 27) {
    if (pos + 8 > buf.length) return -1
    const hi = buf[pos] * 0x1000000 + ((buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3])
    const lo = buf[pos + 4] * 0x1000000 + ((buf[pos + 5] << 16) | (buf[pos + 6] << 8) | buf[pos + 7])
    pos += 8
    if (hi === 0 || hi > 0x1fffff) return -1
    arg = hi * 0x100000000 + lo
    if (arg > (major === MAJOR_NEGINT ? MAX_ARG - 1 : MAX_ARG)) return -1
  } else return -1
  if (major >= MAJOR_BYTES && major <= MAJOR_MAP && arg > buf.length - pos) return -1
  return major
}

/** Reads a text string at `pos` (head and strictly valid UTF-8, no leading BOM); its content's start, or -1. */
function text(): number {
  if (head() !== MAJOR_TEXT) return -1
  const start = pos
  pos += arg
  return utf8(start, pos) ? start : -1
}

/** Whether `buf[start, end)` is well-formed UTF-8 (Unicode §3.9, Table 3-7) not starting with U+FEFF. */
function utf8(start: number, end: number): boolean {
  if (end - start >= 3 && buf[start] === 0xef && buf[start + 1] === 0xbb && buf[start + 2] === 0xbf) return false
  let i = start
  while (i < end) {
    const b = buf[i]
    if (b < 0x80) {
      i++
      continue
    }
    let n: number
    let lo = 0x80
    let hi = 0xbf
    if (b >= 0xc2 && b <= 0xdf) n = 1
    else if (b >= 0xe0 && b <= 0xef) {
      n = 2
      if (b === 0xe0) lo = 0xa0
      else if (b === 0xed) hi = 0x9f
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 3
      if (b === 0xf0) lo = 0x90
      else if (b === 0xf4) hi = 0x8f
    } else return false
    if (i + n >= end) return false
    const c1 = buf[i + 1]
    if (c1 < lo || c1 > hi) return false
    for (let k = 2; k <= n; k++) {
      const c = buf[i + k]
      if (c < 0x80 || c > 0xbf) return false
    }
    i += n + 1
  }
  return true
}

/**
 * Reads a map key (a text string) at `pos` that must sort strictly after the key at
 * `prevStart`/`prevLen` (prevLen -1: none), length-first then bytewise, and must not be
 * `__proto__` or `/`. Its content's start (its length is left in `arg`), or -1.
 */
function key(prevStart: number, prevLen: number): number {
  const start = text()
  if (start < 0) return -1
  const len = arg
  if (prevLen >= 0) {
    if (len < prevLen) return -1
    if (len === prevLen) {
      let cmp = 0
      for (let i = 0; i < len && cmp === 0; i++) cmp = buf[start + i] - buf[prevStart + i]
      if (cmp <= 0) return -1
    }
  }
  if (len === 1 && buf[start] === 0x2f) return -1 // '/'
  if (len === 9 && isProto(start)) return -1
  arg = len
  return start
}

const PROTO = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f] // "__proto__"
function isProto(start: number): boolean {
  for (let i = 0; i < 9; i++) if (buf[start + i] !== PROTO[i]) return false
  return true
}

/** Skips one IPLD value at `pos` (at nesting `depth`); whether it is canonical DAG-CBOR as described in the module comment. */
function value(depth: number): boolean {
  if (pos >= buf.length) return false
  const b = buf[pos]
  if (b >= 0xe0) {
    // Major type 7: only false, true, null.
    pos++
    return b === 0xf4 || b === 0xf5 || b === NULL
  }
  const major = head()
  switch (major) {
    case MAJOR_UINT:
    case MAJOR_NEGINT:
      return true
    case MAJOR_BYTES:
      pos += arg
      return true
    case MAJOR_TEXT: {
      const start = pos
      pos += arg
      return utf8(start, pos)
    }
    case MAJOR_ARRAY: {
      if (depth > MAX_DEPTH) return false
      const n = arg
      for (let i = 0; i < n; i++) if (!value(depth + 1)) return false
      return true
    }
    case MAJOR_MAP:
      return map(depth)
    case MAJOR_TAG:
      return arg === CID_TAG && link()
    default:
      return false
  }
}

/** Skips the entries of a map whose head was just read (`arg` entries, at `depth`); whether canonical. */
function map(depth: number): boolean {
  if (depth > MAX_DEPTH) return false
  const n = arg
  let prevStart = 0
  let prevLen = -1
  for (let i = 0; i < n; i++) {
    const start = key(prevStart, prevLen)
    if (start < 0) return false
    prevStart = start
    prevLen = arg
    if (!value(depth + 1)) return false
  }
  return true
}

/** Reads the content of a tag-42 link (the tag head already read): bytes `0x00` + a CID with minimal varints, exactly. */
function link(): boolean {
  if (head() !== MAJOR_BYTES) return false
  const end = pos + arg
  if (arg < 2 || buf[pos] !== 0x00) return false
  pos += 1
  if (buf[pos] === 0x12) {
    // CIDv0: a bare sha2-256 multihash.
    if (end - pos !== 34 || buf[pos + 1] !== 0x20) return false
    pos = end
    return true
  }
  if (buf[pos] !== 0x01) return false
  pos += 1
  if (varint(end) < 0) return false // codec
  if (varint(end) < 0) return false // multihash code
  const size = varint(end)
  if (size < 0 || end - pos !== size) return false
  pos = end
  return true
}

/**
 * Reads an unsigned LEB128 varint (multiformats unsigned-varint) at `pos`, not past `end`: its
 * value, or -1 when it runs past `end`, is not minimal (a last byte 0x00 after the first), or is
 * longer than 4 bytes.
 */
function varint(end: number): number {
  let value = 0
  let shift = 0
  for (let i = 0; i < 4; i++) {
    if (pos >= end) return -1
    const b = buf[pos++]
    value += (b & 0x7f) * 2 ** shift
    if ((b & 0x80) === 0) return i > 0 && b === 0 ? -1 : value
    shift += 7
  }
  return -1
}

/** Multicodec of an Ed25519 public key (did:key). */
const ED25519 = 0xed
/** Multicodec of a P-256 public key: dag-ucan accepts it only compressed (≤ 35 bytes with the varint). */
const P256 = 0x1200
/** Multicodec dag-ucan gives a `did:` method string (`DID_CORE`). */
const DID_CORE = 0x0d1d

/**
 * Reads `iss`/`aud`: bytes dag-ucan's `DID.decode` accepts (and keeps as they are): a key type's
 * minimal varint and its key — Ed25519 exactly 32 bytes, P-256 at most 35 bytes in all, RSA,
 * P-384, P-521, secp256k1, BLS12-381 G1/G2 at least one byte — or 0x0d1d and a non-empty valid
 * UTF-8 method string (`did:web:…`).
 */
function principal(): boolean {
  return head() === MAJOR_BYTES && principalBody(pos + arg)
}

/** Reads a principal's bytes from `pos` to `end` (see {@link principal}). */
function principalBody(end: number): boolean {
  const start = pos
  const code = varint(end)
  switch (code) {
    case ED25519:
      if (end - pos !== 32) return false
      break
    case P256:
      if (end - start > 35 || end === pos) return false
      break
    case 0x1205: // RSA
    case 0x1201: // P-384
    case 0x1202: // P-521
    case 0xe7: // secp256k1
    case 0xea: // BLS12-381 G1
    case 0xeb: // BLS12-381 G2
      if (end === pos) return false
      break
    case DID_CORE:
      if (end === pos || !utf8(pos, end)) return false
      break
    default:
      return false
  }
  pos = end
  return true
}

/** Signature algorithm codes dag-ucan names (signature.js `codeName`). */
function namedSignatureCode(code: number): boolean {
  switch (code) {
    case 0xd0e7: // ES256K
    case 0xd0ea: // BLS12381G1
    case 0xd0eb: // BLS12381G2
    case 0xd0ed: // EdDSA
    case 0xd01200: // ES256
    case 0xd01201: // ES384
    case 0xd01202: // ES512
    case 0xd01205: // RS256
    case 0xd191: // EIP191
      return true
    default:
      return false
  }
}

/**
 * Reads `s`: bytes of a minimal varint algorithm code (one dag-ucan names, or 0xd000), a minimal
 * varint size, exactly that many bytes, then (0xd000 only) the algorithm's name in UTF-8.
 */
function signature(): boolean {
  return head() === MAJOR_BYTES && signatureBody(pos + arg)
}

/** Reads a signature's bytes from `pos` to `end` (see {@link signature}). */
function signatureBody(end: number): boolean {
  const code = varint(end)
  if (code !== NON_STANDARD && !namedSignatureCode(code)) return false
  const size = varint(end)
  if (size < 0 || end - pos < size) return false
  pos += size
  // A non-standard signature (a did:mailto UCAN's, `Absentee`) ends with its algorithm's name,
  // which dag-ucan reads with a TextDecoder: it must be well-formed, without a leading BOM.
  if (code === NON_STANDARD ? !utf8(pos, end) : pos !== end) return false
  pos = end
  return true
}

/** Multicodec of a non-standard signature: varint size, raw bytes, then the algorithm's UTF-8 name. */
const NON_STANDARD = 0xd000

/** Reads `v`: text of ASCII digits `N.N.N` (each N one or more digits), which dag-ucan's readVersion accepts. */
function version(): boolean {
  const start = text()
  if (start < 0) return false
  const end = start + arg
  let i = start
  for (let part = 0; part < 3; part++) {
    const from = i
    while (i < end && buf[i] >= 0x30 && buf[i] <= 0x39) i++
    if (i === from) return false
    if (part < 2) {
      if (i >= end || buf[i] !== 0x2e) return false
      i++
    }
  }
  return i === end
}

/** Reads an integer (major type 0 or 1); its value's sign-free "is zero" answered via the return: 1 non-zero, 0 zero, -1 not an integer. */
function integer(): number {
  const major = head()
  if (major !== MAJOR_UINT && major !== MAJOR_NEGINT) return -1
  return major === MAJOR_UINT && arg === 0 ? 0 : 1
}

/** Reads `att`: an array of capability maps. */
function capabilities(): boolean {
  if (head() !== MAJOR_ARRAY) return false
  const n = arg
  for (let i = 0; i < n; i++) if (!capability()) return false
  return true
}

// Capability keys as numbers of their bytes.
const K_CAN = 0x63616e
const K_WITH = 0x77697468

/** Reads one capability: a canonical map (at depth 3) with a `can` and a `with` that dag-ucan keeps as they are. */
function capability(): boolean {
  if (head() !== MAJOR_MAP) return false
  const n = arg
  let prevStart = 0
  let prevLen = -1
  let seen = 0
  for (let i = 0; i < n; i++) {
    const start = key(prevStart, prevLen)
    if (start < 0) return false
    prevStart = start
    prevLen = arg
    const k = arg === 3 ? word(start, 3) : arg === 4 ? word(start, 4) : -1
    if (k === K_CAN) {
      if (!ability()) return false
      seen |= 1
    } else if (k === K_WITH) {
      if (!resource()) return false
      seen |= 2
    } else if (!value(4)) return false
  }
  return seen === 3
}

/** The bytes `buf[start, start + len)` (len ≤ 4) as one big-endian number. */
function word(start: number, len: number): number {
  let w = 0
  for (let i = 0; i < len; i++) w = w * 256 + buf[start + i]
  return w
}

/**
 * Reads `can`: `*`, or lowercase printable ASCII with a `/` neither first nor last — what
 * dag-ucan's readAbility accepts and its `toLocaleLowerCase()` leaves as it is in every locale.
 */
function ability(): boolean {
  const start = text()
  if (start < 0) return false
  const len = arg
  if (len === 1 && buf[start] === 0x2a) return true
  let slash = false
  for (let i = 0; i < len; i++) {
    const c = buf[start + i]
    if (c < 0x20 || c >= 0x7f || (c >= 0x41 && c <= 0x5a)) return false
    if (c === 0x2f && i > 0 && i < len - 1) slash = true
  }
  return slash
}

const SPECIAL_SCHEMES = new Set(['ftp', 'file', 'http', 'https', 'ws', 'wss'])
const decoder = new TextDecoder()

/**
 * Reads `with`: a string dag-ucan's readResource accepts (`new URL(with)` does not throw). Taken
 * at once when it is a non-special scheme (WHATWG URL §4.1) followed by `:` and not `/` (the
 * opaque-path state, which never fails), as `did:key:…` is; otherwise `URL.canParse` decides.
 */
function resource(): boolean {
  const start = text()
  if (start < 0) return false
  const end = start + arg
  let i = start
  const first = buf[i]
  if (i < end && ((first >= 0x61 && first <= 0x7a) || (first >= 0x41 && first <= 0x5a))) {
    i++
    while (i < end && isSchemeByte(buf[i])) i++
    if (i < end && buf[i] === 0x3a && (i + 1 === end || buf[i + 1] !== 0x2f)) {
      if (i - start > 5 || !SPECIAL_SCHEMES.has(decoder.decode(buf.subarray(start, i)).toLowerCase())) return true
    }
  }
  return URL.canParse(decoder.decode(buf.subarray(start, end)))
}

/** ASCII alphanumeric, `+`, `-` or `.` (a scheme's bytes after the first). */
function isSchemeByte(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e
}

/** Reads `prf`: an array of links. */
function proofs(): boolean {
  if (head() !== MAJOR_ARRAY) return false
  const n = arg
  for (let i = 0; i < n; i++) {
    if (head() !== MAJOR_TAG || arg !== CID_TAG || !link()) return false
  }
  return true
}

/** Reads `fct`: a non-empty array of maps (dag-ucan leaves out an empty `fct`; maps only, conservatively). */
function facts(): boolean {
  if (head() !== MAJOR_ARRAY) return false
  const n = arg
  if (n === 0) return false
  for (let i = 0; i < n; i++) {
    if (head() !== MAJOR_MAP || !map(3)) return false
  }
  return true
}

/** Reads the whole UCAN map at `pos`: exactly the keys dag-ucan writes, in canonical order, each as it writes it. */
function ucan(): boolean {
  if (head() !== MAJOR_MAP) return false
  const n = arg
  if (n < 7 || n > 10) return false
  let prevStart = 0
  let prevLen = -1
  let required = 0
  for (let i = 0; i < n; i++) {
    const start = key(prevStart, prevLen)
    if (start < 0) return false
    prevStart = start
    prevLen = arg
    if (arg !== 1 && arg !== 3) return false
    let ok: boolean
    switch (word(start, arg)) {
      case K_S:
        ok = signature()
        required |= 1
        break
      case K_V:
        ok = version()
        required |= 2
        break
      case K_ATT:
        ok = capabilities()
        required |= 4
        break
      case K_AUD:
        ok = principal()
        required |= 8
        break
      case K_EXP:
        ok = buf[pos] === NULL ? (pos++, true) : integer() >= 0
        required |= 16
        break
      case K_FCT:
        ok = facts()
        break
      case K_ISS:
        ok = principal()
        required |= 32
        break
      case K_NBF:
        ok = integer() === 1
        break
      case K_NNC:
        ok = text() >= 0
        break
      case K_PRF:
        ok = proofs()
        required |= 64
        break
      default:
        return false
    }
    if (!ok) return false
  }
  return required === 127
}
