/**
 * Ed25519 (RFC 8032 §5.1) signing and verification for UCANs and receipts, in libsodium when it
 * loads (`sodium-native`, prebuilt for the usual platforms) and in OpenSSL (`node:crypto`) otherwise.
 *
 * Why not OpenSSL alone: on the 2-core machine the benchmarks run on, OpenSSL 3.0 verifies one
 * signature in ~120 µs and signs in ~40; libsodium takes ~52 and ~18 (BENCHMARKS.md). Two verifies
 * and a signature per append made Ed25519 the largest single share of an append's CPU.
 *
 * Same answers where it matters: Ed25519 signing is deterministic, so both produce the same 64
 * bytes. Verification in both is cofactorless (R is recomputed as [S]B − [k]A and compared byte
 * for byte) and refuses a non-canonical S (S ≥ L), so no signature is malleable. libsodium is
 * stricter on keys no honest signer has: it also refuses a public key or an R of small order and a
 * non-canonical encoding of the public key, which OpenSSL accepts. Whatever libsodium accepts,
 * OpenSSL accepts too.
 */
import * as crypto from 'node:crypto'
import { createRequire } from 'node:module'

/** Bytes of an Ed25519 public key or seed. */
export const ED25519_KEY_BYTES = 32
/** Bytes of an Ed25519 signature (R ‖ S). */
export const ED25519_SIGNATURE_BYTES = 64

/** What this module uses of sodium-native. */
interface Sodium {
  crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
  crypto_sign_detached(signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void
  crypto_sign_seed_keypair(publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void
}

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4); the 32-byte key follows. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
/** DER prefix of an Ed25519 PKCS #8 private key (RFC 8410 §7); the 32-byte seed follows. */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

/** A parsed Ed25519 public key: verifies 64-byte signatures over messages. */
export interface Ed25519PublicKey {
  /**
   * True iff `signature` (64 bytes) is a valid signature of `message` under this key (see the
   * module comment for what is refused). Never throws: wrong lengths are false.
   */
  verify(message: Uint8Array, signature: Uint8Array): boolean
}

/** An Ed25519 private key: signs messages. */
export interface Ed25519PrivateKey {
  /** The 64-byte signature of `message` (deterministic, RFC 8032 §5.1.6). */
  sign(message: Uint8Array): Uint8Array
}

/** One implementation of both operations (libsodium's or OpenSSL's). */
export interface Ed25519Backend {
  name: 'libsodium' | 'openssl'
  /** {@link ed25519PublicKey} in this implementation; `publicKey` is 32 bytes (checked by the caller). */
  publicKey(publicKey: Uint8Array): Ed25519PublicKey
  /** {@link ed25519PrivateKey} in this implementation; `seed` is 32 bytes (checked by the caller). */
  privateKey(seed: Uint8Array): Ed25519PrivateKey
}

/** OpenSSL's Ed25519 (`node:crypto`), always available. */
export const OPENSSL_ED25519: Ed25519Backend = {
  name: 'openssl',
  publicKey(publicKey) {
    const key = crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
    return {
      verify(message, signature) {
        if (signature.byteLength !== ED25519_SIGNATURE_BYTES) return false
        try {
          return crypto.verify(null, message, key, signature)
        } catch {
          return false
        }
      },
    }
  },
  privateKey(seed) {
    const key = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' })
    return {
      sign(message) {
        const raw = crypto.sign(null, message, key)
        return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)
      },
    }
  },
}

/** libsodium's Ed25519 (`sodium-native`), or undefined when the addon does not load here. */
export const LIBSODIUM_ED25519: Ed25519Backend | undefined = (() => {
  let s: Sodium
  try {
    s = createRequire(import.meta.url)('sodium-native') as Sodium
  } catch {
    return undefined
  }
  return {
    name: 'libsodium',
    publicKey(publicKey) {
      const key = new Uint8Array(publicKey)
      return { verify: (message, signature) => signature.byteLength === ED25519_SIGNATURE_BYTES && s.crypto_sign_verify_detached(signature, message, key) }
    },
    privateKey(seed) {
      const secret = new Uint8Array(64)
      s.crypto_sign_seed_keypair(new Uint8Array(ED25519_KEY_BYTES), secret, new Uint8Array(seed))
      return {
        sign(message) {
          const signature = new Uint8Array(ED25519_SIGNATURE_BYTES)
          s.crypto_sign_detached(signature, message, secret)
          return signature
        },
      }
    },
  } satisfies Ed25519Backend
})()

/** What this process uses: libsodium when it loads, unless `UCANLOG_ED25519=openssl` asks for OpenSSL. */
export const ED25519: Ed25519Backend = (process.env.UCANLOG_ED25519 !== 'openssl' && LIBSODIUM_ED25519) || OPENSSL_ED25519

/**
 * Parses a 32-byte Ed25519 public key (RFC 8032 §5.1.5 encoding), in {@link ED25519}.
 * @throws RangeError unless `publicKey` is 32 bytes.
 */
export function ed25519PublicKey(publicKey: Uint8Array): Ed25519PublicKey {
  if (publicKey.byteLength !== ED25519_KEY_BYTES) throw new RangeError('an Ed25519 public key is 32 bytes')
  return ED25519.publicKey(publicKey)
}

/**
 * The Ed25519 private key of a 32-byte seed (RFC 8032 §5.1.5), in {@link ED25519}.
 * @throws RangeError unless `seed` is 32 bytes.
 */
export function ed25519PrivateKey(seed: Uint8Array): Ed25519PrivateKey {
  if (seed.byteLength !== ED25519_KEY_BYTES) throw new RangeError('an Ed25519 seed is 32 bytes')
  return ED25519.privateKey(seed)
}
