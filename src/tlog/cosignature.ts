/**
 * Witness cosignatures per c2sp.org/tlog-cosignature (v1.0.1), `cosignature/v1`: timestamped
 * Ed25519 signatures, signature type 0x04, over
 *
 *     cosignature/v1\n
 *     time <T>\n
 *     <the whole checkpoint note text, extension lines included>
 *
 * carried in a note signature line as `— <name> base64(keyID[4] || T[8, big-endian] || sig[64])`.
 * T is Unix seconds. The key ID is computed with type 0x04, so the same Ed25519 key has a
 * different ID (and vkey) as a cosigner than as a note signer.
 */
import { formatCheckpoint, MalformedCheckpointError, parseCheckpoint } from './checkpoint.js'
import {
  ed25519Signer,
  ed25519Verifier,
  formatVerifierKey,
  MalformedKeyError,
  parseVerifierKey,
  SIG_TYPE_COSIGNATURE_V1,
  SIG_TYPE_ED25519,
  keyId as computeKeyId,
} from './note.js'
import type { NoteSignature, NoteVerifier } from './note.js'

/** Length of a cosignature/v1 signature after the key ID: 8-byte timestamp + 64-byte Ed25519. */
const COSIGNATURE_SIZE = 8 + 64

const utf8 = new TextEncoder()
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Builds the signed message of a cosignature/v1 (c2sp.org/tlog-cosignature §Signed message):
 * `"cosignature/v1\ntime " + T + "\n" + text`, UTF-8.
 * @param text checkpoint note text, which must be canonical c2sp.org/tlog-checkpoint (torchwood
 *   refuses to sign or verify anything else, so a witness never signs text it parsed differently).
 * @param timestamp Unix seconds, an integer 0 ≤ T ≤ Number.MAX_SAFE_INTEGER (the spec allows up to
 *   2^63−1; larger values are 285 million years away and rejected here).
 * @throws MalformedCheckpointError if the text is not a canonical checkpoint; RangeError for a bad timestamp.
 */
export function cosignatureMessage(text: string, timestamp: number): Uint8Array {
  checkTimestamp(timestamp)
  if (formatCheckpoint(parseCheckpoint(text)) !== text) throw new MalformedCheckpointError('checkpoint text is not canonical')
  return utf8.encode(`cosignature/v1\ntime ${timestamp}\n${text}`)
}

/**
 * A witness cosigning key (c2sp.org/tlog-cosignature cosignature/v1).
 * - `vkey`: `<name>+<hex8 keyID>+base64(0x04 || 32-byte Ed25519 public key)`.
 * - `cosign(text, timestamp)`: the note signature for `text` (a canonical checkpoint) at `timestamp`
 *   (Unix seconds); `signature` is `T[8, big-endian] || sig[64]`. Format it with formatSignatureLine.
 *   Throws MalformedCheckpointError / RangeError as cosignatureMessage.
 */
export interface Cosigner {
  name: string
  keyId: number
  vkey: string
  cosign(text: string, timestamp: number): NoteSignature
}

/**
 * Builds a cosignature/v1 cosigner from a key name and a 32-byte Ed25519 seed (RFC 8032).
 * Ed25519 is deterministic: the same seed, text and timestamp always give the same line.
 * @throws MalformedKeyError if the name is not a valid key name or the seed is not 32 bytes.
 */
export function ed25519Cosigner(name: string, seed: Uint8Array): Cosigner {
  const signer = ed25519Signer(name, seed)
  const { publicKey } = parseVerifierKey(signer.vkey)
  const keyId = computeKeyId(name, SIG_TYPE_COSIGNATURE_V1, publicKey)
  return {
    name,
    keyId,
    vkey: formatVerifierKey(name, SIG_TYPE_COSIGNATURE_V1, publicKey),
    cosign(text, timestamp) {
      const sig = signer.sign(cosignatureMessage(text, timestamp))
      const signature = new Uint8Array(COSIGNATURE_SIZE)
      new DataView(signature.buffer).setBigUint64(0, BigInt(timestamp))
      signature.set(sig, 8)
      return { name, keyId, signature }
    },
  }
}

/**
 * Builds a verifier for a cosignature/v1 vkey (type 0x04 required, key ID checked), usable with
 * openNote. `verify(msg, sig)`: msg = checkpoint note text bytes; sig must be exactly 72 bytes,
 * `T[8] || sig[64]`, with T ≤ Number.MAX_SAFE_INTEGER; the text must be a canonical checkpoint.
 * `timestamp(sig)` returns T (Unix seconds) without verifying anything; it throws RangeError if sig
 * is not 72 bytes or T is too large.
 * @throws MalformedKeyError if the vkey is malformed or not type 0x04.
 */
export function cosignatureVerifier(vkey: string): NoteVerifier & { vkey: string; timestamp(sig: Uint8Array): number } {
  const k = parseVerifierKey(vkey)
  if (k.type !== SIG_TYPE_COSIGNATURE_V1) {
    throw new MalformedKeyError(`cosigner key type is 0x${k.type.toString(16).padStart(2, '0')}, want 0x04 (cosignature/v1)`)
  }
  // The Ed25519 check itself is the same for any message; reuse the note verifier for the raw key.
  const ed = ed25519Verifier(formatVerifierKey(k.name, SIG_TYPE_ED25519, k.publicKey))
  const timestamp = (sig: Uint8Array): number => {
    if (sig.length !== COSIGNATURE_SIZE) throw new RangeError(`cosignature must be ${COSIGNATURE_SIZE} bytes`)
    const t = new DataView(sig.buffer, sig.byteOffset, sig.byteLength).getBigUint64(0)
    if (t > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('cosignature timestamp is out of range')
    return Number(t)
  }
  return {
    name: k.name,
    keyId: k.keyId,
    vkey: formatVerifierKey(k.name, SIG_TYPE_COSIGNATURE_V1, k.publicKey),
    timestamp,
    verify(msg, sig) {
      let message: Uint8Array
      try {
        message = cosignatureMessage(utf8Strict.decode(msg), timestamp(sig))
      } catch {
        return false
      }
      return ed.verify(message, sig.subarray(8))
    },
  }
}

function checkTimestamp(t: number): void {
  if (!Number.isSafeInteger(t) || t < 0) throw new RangeError('timestamp must be an integer number of Unix seconds, 0 ≤ T ≤ 2^53−1')
}
