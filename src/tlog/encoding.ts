/**
 * Strict, canonical standard base64 (RFC 4648 §4, with padding), as every C2SP text format uses it:
 * signed-note signatures and keys, checkpoint root hashes, tlog-witness proof lines.
 *
 * Node's `Buffer.from(s, 'base64')` skips bad characters, accepts missing padding and URL-safe
 * characters; Go's decoder accepts non-zero trailing bits. Either leniency is a parser differential
 * (a witness or log could sign a text it did not parse the same way), so decoding here accepts only
 * the one canonical encoding of the bytes: `encodeBase64(decodeBase64(s)) === s`.
 */
/** SHA-256 output size in bytes (RFC 6962 §2.1). */
const HASH_SIZE_BYTES = 32

/** A string that is not the canonical padded standard base64 encoding of some bytes. */
export class MalformedBase64Error extends Error {
  override name = 'MalformedBase64Error'
}

const ALPHABET = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Encodes bytes as canonical padded standard base64 (RFC 4648 §4). */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

/**
 * Decodes canonical padded standard base64 (RFC 4648 §4).
 * @throws MalformedBase64Error on any character outside the alphabet, missing or extra padding,
 *   or non-zero trailing bits (a non-canonical encoding).
 */
export function decodeBase64(s: string): Uint8Array {
  if (!ALPHABET.test(s)) throw new MalformedBase64Error('not padded standard base64')
  const bytes = new Uint8Array(Buffer.from(s, 'base64'))
  if (encodeBase64(bytes) !== s) throw new MalformedBase64Error('non-canonical base64 (trailing bits set)')
  return bytes
}

/**
 * Decodes a canonical base64 SHA-256 hash (a checkpoint root hash or proof line).
 * @returns a 32-byte Uint8Array.
 * @throws MalformedBase64Error if `s` is not canonical base64 of exactly 32 bytes.
 */
export function decodeHash(s: string): Uint8Array {
  const h = decodeBase64(s)
  if (h.length !== HASH_SIZE_BYTES) throw new MalformedBase64Error(`hash must be ${HASH_SIZE_BYTES} bytes, got ${h.length}`)
  return h
}
