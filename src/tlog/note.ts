/**
 * Signed notes, keys and Ed25519 signatures per c2sp.org/signed-note (v1.0.0), with the
 * golang.org/x/mod/sumdb/note key encodings (`vkey`, `PRIVATE+KEY+…` skey).
 *
 * A note is UTF-8 text ending in "\n", a blank line, then one or more signature lines:
 *
 *     If you think cryptography is the answer to your problem,
 *     then you don't know what your problem is.
 *
 *     — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=
 *
 * Every parser here is strict, canonical and bounded: base64 must be the canonical padded encoding
 * (see encoding.ts), hex key IDs lowercase, and anything else is one malformed-input error per
 * format, never a partial result.
 */
import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { decodeBase64, encodeBase64 } from './encoding.js'

/** Signature type byte of Ed25519 note keys (c2sp.org/signed-note §Signature types). */
export const SIG_TYPE_ED25519 = 0x01

/**
 * Signature type byte of timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature §Format,
 * cosignature/v1): the one declaration, used by cosignature.ts and policy.ts too.
 */
export const SIG_TYPE_COSIGNATURE_V1 = 0x04

/** Signature type byte of ML-DSA-44 (sub)tree cosignatures (c2sp.org/tlog-cosignature v1.1). */
const SIG_TYPE_MLDSA44 = 0x06

/** Ed25519 public keys and seeds are 32 bytes; signatures are 64 bytes (RFC 8032 §5.1.5, §5.1.6). */
const ED25519_KEY_SIZE = 32
const ED25519_SIG_SIZE = 64
const MLDSA44_PUBLIC_KEY_SIZE = 1312

/**
 * Maximum number of signature lines in a note. The spec requires verifiers to accept at least 16;
 * Go's note.Open rejects more than 100, and so do we.
 */
export const MAX_NOTE_SIGNATURES = 100

/** Maximum size of a whole note message, in UTF-8 bytes (1 MiB). A bound, not a spec value. */
export const MAX_NOTE_SIZE = 1 << 20

/** Maximum length of a vkey or skey string, in characters (room for an ML-DSA-44 vkey). */
const MAX_KEY_LENGTH = 4096

// DER prefixes that wrap a raw 32-byte Ed25519 seed (PKCS #8, RFC 8410 §7) and public key (SPKI,
// RFC 8410 §4), so node:crypto can build KeyObjects without any other encoding.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/** The signature line prefix: U+2014 EM DASH, then a space. */
const SIG_PREFIX = '\u2014 '

/**
 * Unicode White_Space, the set Go's unicode.IsSpace tests: ASCII \t \n \v \f \r and space, plus
 * U+0085, U+00A0, U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F and U+3000. JavaScript's
 * `\s` differs (it lacks U+0085 and adds U+FEFF), so the set is spelled out.
 */
// Stryker disable next-line Regex: some Regex mutants of this /u character class are invalid regular expressions (a module that does not parse hides every test of it)
const UNICODE_SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u
/** ASCII control characters (C0) and lone UTF-16 surrogates (text that is not valid UTF-8). */
const CONTROL_OR_LONE_SURROGATE = /[\u0000-\u001f]|\p{Cs}/u

const utf8 = new TextEncoder()

/** A vkey, skey or key name that is not well formed, or whose key ID does not match its key. */
export class MalformedKeyError extends Error {
  override name = 'MalformedKeyError'
}

/** A message that is not a well-formed signed note (c2sp.org/signed-note §Format). */
export class MalformedNoteError extends Error {
  override name = 'MalformedNoteError'
}

/**
 * A well-formed note none of whose signatures is from a known key (Go's note.UnverifiedNoteError).
 * `note` holds the parsed text and its (all unverified) signatures.
 */
export class UnverifiedNoteError extends Error {
  override name = 'UnverifiedNoteError'
  constructor(readonly note: { text: string; unverified: NoteSignature[] }) {
    super('note has no verifiable signatures')
  }
}

/** A signature from a known key (matching name and key ID) that does not verify. */
export class InvalidSignatureError extends Error {
  override name = 'InvalidSignatureError'
  constructor(readonly keyName: string, readonly keyId: number) {
    super(`invalid signature for key ${keyName}+${hex8(keyId)}`)
  }
}

/**
 * Two verifiers passed to {@link openNote} share a name and key ID, so a signature line cannot be
 * attributed to one key (Go's ambiguousVerifierError). A configuration error, not an input error.
 */
export class AmbiguousVerifierError extends Error {
  override name = 'AmbiguousVerifierError'
  constructor(readonly keyName: string, readonly keyId: number) {
    super(`ambiguous key ${keyName}+${hex8(keyId)}`)
  }
}

/**
 * One signature line of a note: `— <name> base64(keyId[4, big-endian] || signature)`.
 * `keyId` is a uint32 (0 ≤ keyId < 2^32); `signature` is the bytes after the key ID (for Ed25519,
 * 64 bytes; for cosignature/v1, 8-byte timestamp || 64 bytes).
 */
export interface NoteSignature {
  name: string
  keyId: number
  signature: Uint8Array
}

/** A key that can check signatures on note text. `verify(msg, sig)`: msg = the note text bytes, sig = bytes after the key ID. */
export interface NoteVerifier {
  name: string
  keyId: number
  verify(msg: Uint8Array, sig: Uint8Array): boolean
}

/** A key that can sign note text. `sign(msg)` returns the signature bytes, without the key ID. */
export interface NoteSigner {
  name: string
  keyId: number
  sign(msg: Uint8Array): Uint8Array
}

/**
 * Reports whether `name` is a valid key name (c2sp.org/signed-note §Format): non-empty, valid UTF-8
 * (no lone surrogates), no Unicode whitespace (see UNICODE_SPACE), no `+`, and no ASCII control
 * characters (which a note may never contain).
 */
export function isValidKeyName(name: string): boolean {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    !name.includes('+') &&
    !UNICODE_SPACE.test(name) &&
    !CONTROL_OR_LONE_SURROGATE.test(name)
  )
}

/**
 * Computes a key ID (c2sp.org/signed-note §Signatures):
 * `SHA-256(name || 0x0A || type || publicKey)[0:4]`, read as a big-endian uint32.
 * @param type the signature type byte, 0..255.
 * @returns a uint32, 0 ≤ id < 2^32.
 */
export function keyId(name: string, type: number, publicKey: Uint8Array): number {
  const h = createHash('sha256')
    .update(utf8.encode(name))
    .update(Uint8Array.of(0x0a, type))
    .update(publicKey)
    .digest()
  return h.readUInt32BE(0)
}

/**
 * Parses a verifier key, `<name>+<hex8 keyID>+base64(type || publicKey)` (c2sp.org/signed-note
 * §Verifier keys). It splits only at the first two `+` (the base64 may contain `+`), requires 8
 * lowercase hex digits and canonical base64, and recomputes the key ID. Accepted types: 0x01
 * (Ed25519, 32-byte key), 0x04 (cosignature/v1, 32-byte key), 0x06 (ML-DSA-44, 1312-byte key).
 * @returns the name, key ID (uint32), type byte and public key bytes (without the type byte).
 * @throws MalformedKeyError on any deviation, an unknown type, a wrong key length or a key ID that
 *   does not match.
 */
export function parseVerifierKey(vkey: string): { name: string; keyId: number; type: number; publicKey: Uint8Array } {
  if (typeof vkey !== 'string' || vkey.length > MAX_KEY_LENGTH) throw new MalformedKeyError('malformed verifier key')
  const [name, hex, b64] = splitPlus(vkey, 2)
  return parseKeyParts(name, hex, b64, 'verifier key')
}

/**
 * Formats a verifier key, `<name>+<hex8 keyID>+base64(type || publicKey)` (c2sp.org/signed-note
 * §Verifier keys), with lowercase hex and canonical base64.
 * @throws MalformedKeyError if the name is not a valid key name or the type is not a byte.
 */
export function formatVerifierKey(name: string, type: number, publicKey: Uint8Array): string {
  if (!isValidKeyName(name)) throw new MalformedKeyError('invalid key name')
  if (!Number.isInteger(type) || type < 0 || type > 0xff) throw new MalformedKeyError('invalid signature type')
  const key = new Uint8Array(1 + publicKey.length)
  key[0] = type
  key.set(publicKey, 1)
  return `${name}+${hex8(keyId(name, type, publicKey))}+${encodeBase64(key)}`
}

/**
 * Builds a verifier for an Ed25519 (type 0x01) vkey (c2sp.org/signed-note §Ed25519). `verify`
 * checks a 64-byte RFC 8032 signature over the message bytes.
 * @returns the verifier and its canonical `vkey`.
 * @throws MalformedKeyError if the vkey is malformed or not type 0x01.
 */
export function ed25519Verifier(vkey: string): NoteVerifier & { vkey: string } {
  const k = parseVerifierKey(vkey)
  if (k.type !== SIG_TYPE_ED25519) throw new MalformedKeyError(`verifier key type is 0x${hex2(k.type)}, want 0x01 (Ed25519)`)
  const pub = ed25519PublicKeyObject(k.publicKey)
  return {
    name: k.name,
    keyId: k.keyId,
    vkey: formatVerifierKey(k.name, k.type, k.publicKey),
    verify: (msg, sig) => sig.length === ED25519_SIG_SIZE && cryptoVerify(null, msg, pub, sig),
  }
}

/**
 * Builds an Ed25519 note signer (type 0x01) from a name and a 32-byte RFC 8032 seed.
 * @returns the signer, its `vkey` and its `skey` (`PRIVATE+KEY+<name>+<hex8>+base64(0x01 || seed)`,
 *   a secret; the property is not enumerable, so it stays out of JSON and casual logging).
 * @throws MalformedKeyError if the name is invalid or the seed is not 32 bytes.
 */
export function ed25519Signer(name: string, seed: Uint8Array): NoteSigner & { vkey: string; skey: string } {
  if (!isValidKeyName(name)) throw new MalformedKeyError('invalid key name')
  if (!(seed instanceof Uint8Array) || seed.length !== ED25519_KEY_SIZE) {
    throw new MalformedKeyError(`Ed25519 seed must be ${ED25519_KEY_SIZE} bytes`)
  }
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' })
  const publicKey = new Uint8Array(spki.subarray(SPKI_ED25519_PREFIX.length))
  const id = keyId(name, SIG_TYPE_ED25519, publicKey)
  const signer = {
    name,
    keyId: id,
    vkey: formatVerifierKey(name, SIG_TYPE_ED25519, publicKey),
    sign: (msg: Uint8Array) => new Uint8Array(cryptoSign(null, msg, priv)),
  }
  const skey = `PRIVATE+KEY+${name}+${hex8(id)}+${encodeBase64(Uint8Array.of(SIG_TYPE_ED25519, ...seed))}`
  Object.defineProperty(signer, 'skey', { value: skey, enumerable: false })
  return signer as typeof signer & { skey: string }
}

/**
 * Parses a signer key, `PRIVATE+KEY+<name>+<hex8 keyID>+base64(0x01 || 32-byte seed)` (the
 * golang.org/x/mod/sumdb/note format). The key ID is over the *public* key, so it is checked after
 * deriving the public key from the seed.
 * @throws MalformedKeyError on any deviation (the message never includes the key).
 */
export function parseSignerKey(skey: string): NoteSigner & { vkey: string; skey: string } {
  if (typeof skey !== 'string' || skey.length > MAX_KEY_LENGTH) throw new MalformedKeyError('malformed signer key')
  const [priv, key, name, hex, b64] = splitPlus(skey, 4)
  if (priv !== 'PRIVATE' || key !== 'KEY') throw new MalformedKeyError('malformed signer key')
  if (!isValidKeyName(name) || !/^[0-9a-f]{8}$/.test(hex)) throw new MalformedKeyError('malformed signer key')
  const bytes = decodeKeyBase64(b64, 'signer key')
  if (bytes.length !== 1 + ED25519_KEY_SIZE || bytes[0] !== SIG_TYPE_ED25519) {
    throw new MalformedKeyError('signer key is not a 32-byte Ed25519 seed')
  }
  const signer = ed25519Signer(name, bytes.subarray(1))
  if (signer.keyId !== parseInt(hex, 16)) throw new MalformedKeyError('signer key ID does not match its key')
  return signer
}

/**
 * Parses a signed note (c2sp.org/signed-note §Format) without verifying anything. The text is
 * everything up to and including the "\n" before the *last* "\n\n"; the rest must be 1..100 lines
 * `— <name> <base64>\n` with a valid key name and at least 5 decoded bytes (key ID + 1).
 * The message must be at most MAX_NOTE_SIZE UTF-8 bytes, valid UTF-8 (no lone surrogates), and
 * contain no ASCII control character other than "\n".
 * @returns the text (ending in "\n") and every signature line in order, duplicates included.
 * @throws MalformedNoteError
 */
export function parseNote(msg: string): { text: string; signatures: NoteSignature[] } {
  if (typeof msg !== 'string') throw new MalformedNoteError('note is not a string')
  checkNoteCharacters(msg, 'note')
  const split = msg.lastIndexOf('\n\n')
  if (split < 0) throw new MalformedNoteError('note has no blank line before its signatures')
  const text = msg.slice(0, split + 1)
  const block = msg.slice(split + 2)
  if (block.length === 0 || !block.endsWith('\n')) throw new MalformedNoteError('note signature block must be non-empty lines ending in a newline')
  const lines = block.slice(0, -1).split('\n')
  if (lines.length > MAX_NOTE_SIGNATURES) throw new MalformedNoteError(`note has more than ${MAX_NOTE_SIGNATURES} signatures`)
  const signatures = lines.map(parseSignatureLine)
  return { text, signatures }
}

/**
 * Formats one signature line: `— <name> base64(keyId[4, big-endian] || signature)\n`
 * (c2sp.org/signed-note §Signatures).
 * @throws MalformedNoteError if the name is invalid, the key ID is not a uint32 or the signature is empty.
 */
export function formatSignatureLine(s: NoteSignature): string {
  if (!isValidKeyName(s.name)) throw new MalformedNoteError('invalid signature key name')
  if (!Number.isInteger(s.keyId) || s.keyId < 0 || s.keyId > 0xffffffff) throw new MalformedNoteError('key ID must be a uint32')
  if (s.signature.length < 1) throw new MalformedNoteError('empty signature')
  const bytes = new Uint8Array(4 + s.signature.length)
  new DataView(bytes.buffer).setUint32(0, s.keyId)
  bytes.set(s.signature, 4)
  return `${SIG_PREFIX}${s.name} ${encodeBase64(bytes)}\n`
}

/**
 * Parses a note and verifies its signatures against known keys, with Go's note.Open semantics
 * (c2sp.org/signed-note §Verifying):
 * - a signature whose (name, key ID) matches no verifier is unknown and ignored (returned in
 *   `unverified`; repeated identical lines once);
 * - a signature from a known key that does not verify rejects the whole note;
 * - repeated signatures from one known key are checked once;
 * - at least one known key must have verified.
 * @returns the text and the verified and unverified signatures, in note order.
 * @throws MalformedNoteError (see parseNote); InvalidSignatureError for a known key whose signature
 *   fails; UnverifiedNoteError if no known key signed; AmbiguousVerifierError if two verifiers
 *   share a name and key ID.
 */
export function openNote(
  msg: string,
  verifiers: readonly NoteVerifier[],
): { text: string; verified: NoteSignature[]; unverified: NoteSignature[] } {
  const { text, signatures } = parseNote(msg)
  const known = new Map<string, NoteVerifier[]>()
  for (const v of verifiers) {
    const k = nameKeyId(v.name, v.keyId)
    known.set(k, [...(known.get(k) ?? []), v])
  }
  const textBytes = utf8.encode(text)
  const verified: NoteSignature[] = []
  const unverified: NoteSignature[] = []
  const seen = new Set<string>()
  const seenUnverified = new Set<string>()
  for (const sig of signatures) {
    const k = nameKeyId(sig.name, sig.keyId)
    const vs = known.get(k)
    if (vs === undefined) {
      const line = `${k} ${encodeBase64(sig.signature)}`
      if (!seenUnverified.has(line)) {
        seenUnverified.add(line)
        unverified.push(sig)
      }
      continue
    }
    if (vs.length > 1) throw new AmbiguousVerifierError(sig.name, sig.keyId)
    if (seen.has(k)) continue
    seen.add(k)
    if (!vs[0]!.verify(textBytes, sig.signature)) throw new InvalidSignatureError(sig.name, sig.keyId)
    verified.push(sig)
  }
  if (verified.length === 0) throw new UnverifiedNoteError({ text, unverified })
  return { text, verified, unverified }
}

/**
 * Signs note text with each signer, in order (c2sp.org/signed-note §Format).
 * @param text note text: ends in "\n", valid UTF-8, no control character other than "\n".
 * @returns `text + "\n" + one signature line per signer`.
 * @throws MalformedNoteError if the text is invalid, there is no signer, or a signer name is invalid.
 */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  if (typeof text !== 'string' || !text.endsWith('\n')) throw new MalformedNoteError('note text must end in a newline')
  checkNoteCharacters(text, 'note text')
  if (signers.length === 0 || signers.length > MAX_NOTE_SIGNATURES) {
    throw new MalformedNoteError(`a note needs 1..${MAX_NOTE_SIGNATURES} signatures`)
  }
  const msg = utf8.encode(text)
  let out = text + '\n'
  for (const s of signers) out += formatSignatureLine({ name: s.name, keyId: s.keyId, signature: s.sign(msg) })
  return out
}

// ---------------------------------------------------------------------------------------------

function parseSignatureLine(line: string): NoteSignature {
  if (!line.startsWith(SIG_PREFIX)) throw new MalformedNoteError('signature line does not start with "— "')
  const rest = line.slice(SIG_PREFIX.length)
  const space = rest.indexOf(' ')
  if (space < 0) throw new MalformedNoteError('signature line has no signature')
  const name = rest.slice(0, space)
  const b64 = rest.slice(space + 1)
  if (!isValidKeyName(name)) throw new MalformedNoteError('signature line has an invalid key name')
  let bytes: Uint8Array
  try {
    bytes = decodeBase64(b64)
  } catch {
    throw new MalformedNoteError('signature is not canonical base64')
  }
  if (bytes.length < 5) throw new MalformedNoteError('signature is shorter than 5 bytes')
  const keyId = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0)
  return { name, keyId, signature: bytes.slice(4) }
}

/** Checks the size bound and character rules shared by whole notes and note text. */
function checkNoteCharacters(s: string, what: string): void {
  // A UTF-16 code unit encodes to at most 3 UTF-8 bytes; only measure when it could matter.
  if (s.length * 3 > MAX_NOTE_SIZE && Buffer.byteLength(s, 'utf8') > MAX_NOTE_SIZE) {
    throw new MalformedNoteError(`${what} is larger than ${MAX_NOTE_SIZE} bytes`)
  }
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 && c !== 0x0a) throw new MalformedNoteError(`${what} contains a control character`)
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1)
      if (c > 0xdbff || !(d >= 0xdc00 && d <= 0xdfff)) throw new MalformedNoteError(`${what} is not valid UTF-8`)
      i++
    }
  }
}

/** Splits at the first `count` `+` characters; the last part keeps any further `+`. */
function splitPlus(s: string, count: 2): [string, string, string]
function splitPlus(s: string, count: 4): [string, string, string, string, string]
function splitPlus(s: string, count: number): string[] {
  const parts: string[] = []
  let rest = s
  for (let i = 0; i < count; i++) {
    const j = rest.indexOf('+')
    if (j < 0) throw new MalformedKeyError('malformed key: too few "+" separators')
    parts.push(rest.slice(0, j))
    rest = rest.slice(j + 1)
  }
  parts.push(rest)
  return parts
}

function parseKeyParts(name: string, hex: string, b64: string, what: string) {
  if (!isValidKeyName(name)) throw new MalformedKeyError(`${what} has an invalid key name`)
  if (!/^[0-9a-f]{8}$/.test(hex)) throw new MalformedKeyError(`${what} key ID must be 8 lowercase hex digits`)
  const bytes = decodeKeyBase64(b64, what)
  if (bytes.length < 1) throw new MalformedKeyError(`${what} has an empty key`)
  const type = bytes[0]!
  const publicKey = bytes.slice(1)
  const want =
    type === SIG_TYPE_ED25519 || type === SIG_TYPE_COSIGNATURE_V1
      ? ED25519_KEY_SIZE
      : type === SIG_TYPE_MLDSA44
        ? MLDSA44_PUBLIC_KEY_SIZE
        : undefined
  if (want === undefined) throw new MalformedKeyError(`${what} has unknown signature type 0x${hex2(type)}`)
  if (publicKey.length !== want) throw new MalformedKeyError(`${what} public key must be ${want} bytes`)
  const id = keyId(name, type, publicKey)
  if (id !== parseInt(hex, 16)) throw new MalformedKeyError(`${what} key ID does not match its key`)
  return { name, keyId: id, type, publicKey }
}

function decodeKeyBase64(b64: string, what: string): Uint8Array {
  try {
    return decodeBase64(b64)
  } catch {
    throw new MalformedKeyError(`${what} is not canonical base64`)
  }
}

function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' })
}

function nameKeyId(name: string, id: number): string {
  return `${name} ${hex8(id)}` // a key name never contains a space
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0')
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0')
}
