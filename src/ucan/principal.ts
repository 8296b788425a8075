/**
 * Ed25519 UCAN principals backed by native code (ed25519.ts: libsodium, or OpenSSL), for ucanto.
 *
 * ucanto verifies and signs Ed25519 (RFC 8032) with `@noble/ed25519` in pure JS — about 330
 * verifies/s and 1,500 signs/s on a 2-vCPU machine, while OpenSSL does about 20× that and
 * libsodium about twice OpenSSL. Signatures
 * are the UCAN varsig `EdDSA` (multicodec 0xd0ed) over the UCAN signing payload; keys are
 * `did:key:z6Mk…` (multicodec 0xed + 32-byte public key).
 *
 * Semantics are ucanto's: Ed25519 is deterministic, so {@link createFastSigner} produces the same
 * signature bytes as ucanto's signer, and {@link createPrincipalParser} accepts exactly the
 * signatures ucanto's `Verifier` accepts from honest signers (ed25519.ts says which forged edge
 * cases native code refuses besides). Both reject a non-canonical `S ≥ L`, so signatures are
 * not malleable; where ucanto throws on a malformed signature (R not a curve point, S ≥ L), this
 * returns false. Non-Ed25519 DIDs (RSA did:keys) go to ucanto's `Verifier`.
 */
import type { API } from '@ucanto/core'
import { Verifier as DefaultVerifier, ed25519 } from '@ucanto/principal'
import { Signature } from '@ucanto/core'
import { ED25519_KEY_BYTES, type Ed25519PrivateKey, type Ed25519PublicKey, ed25519PrivateKey, ed25519PublicKey } from './ed25519.js'

/** Multicodec of the UCAN `EdDSA` varsig. */
const EDDSA = 0xd0ed
/** Length of an Ed25519 public key or seed, in bytes. */
const KEY_SIZE = ED25519_KEY_BYTES

/** How many parsed did:key verifiers {@link createPrincipalParser} keeps by default. */
export const DEFAULT_MAX_CACHED_KEYS = 10_000

type EdSigAlg = ed25519.SigAlg

/** A ucanto Ed25519 `Verifier` for one did:key whose `verify` runs in native code (ed25519.ts). */
class NodeEd25519Verifier implements ed25519.EdVerifier {
  readonly #id: API.DIDKey
  readonly #key: Ed25519PublicKey

  constructor(id: API.DIDKey, publicKey: Uint8Array) {
    this.#id = id
    this.#key = ed25519PublicKey(publicKey)
  }

  get code(): 0xed {
    return 0xed
  }
  get signatureCode(): EdSigAlg {
    return EDDSA as EdSigAlg
  }
  get signatureAlgorithm(): 'EdDSA' {
    return 'EdDSA'
  }
  did(): API.DIDKey {
    return this.#id
  }
  toDIDKey(): API.DIDKey {
    return this.#id
  }

  /** True iff `signature` is an `EdDSA` varsig whose 64-byte value verifies over `payload`. */
  verify<T>(payload: API.ByteView<T>, signature: API.Signature<T, EdSigAlg>): boolean {
    if (signature.code !== EDDSA) return false
    try {
      return this.#key.verify(payload, signature.raw)
    } catch {
      return false
    }
  }

  withDID<ID extends API.DID>(id: ID): API.Verifier<ID, EdSigAlg> {
    return new VerifierWithDID(id, this)
  }
}

/** A verifier whose key is `key` but whose DID is another method's (e.g. did:web). */
class VerifierWithDID<ID extends API.DID> implements API.Verifier<ID, EdSigAlg> {
  constructor(
    readonly id: ID,
    readonly key: API.Verifier<API.DIDKey, EdSigAlg>,
  ) {}
  did(): ID {
    return this.id
  }
  toDIDKey(): API.DIDKey {
    return this.key.toDIDKey()
  }
  verify<T>(payload: API.ByteView<T>, signature: API.Signature<T, EdSigAlg>): API.Await<boolean> {
    return this.key.verify(payload, signature)
  }
  withDID<Other extends API.DID>(id: Other): API.Verifier<Other, EdSigAlg> {
    return new VerifierWithDID(id, this.key)
  }
}

/** Options of {@link createPrincipalParser}. */
export interface PrincipalParserOptions {
  /** Parsed Ed25519 did:keys kept (least recently used evicted); default {@link DEFAULT_MAX_CACHED_KEYS}. */
  maxCachedKeys?: number
}

/**
 * A ucanto `PrincipalParser` (pass as `Server.create({ principal })` and to `claim`/`access`) that
 * verifies Ed25519 did:keys in native code (ed25519.ts) and hands every other DID to ucanto's default
 * `Verifier` (RSA did:keys; it throws on DIDs it cannot parse, as ucanto's does).
 * Parsed keys are cached per DID, at most `maxCachedKeys` of them.
 */
export function createPrincipalParser(options: PrincipalParserOptions = {}): API.PrincipalParser {
  const max = options.maxCachedKeys ?? DEFAULT_MAX_CACHED_KEYS
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxCachedKeys must be a positive integer')
  const cache = new Map<string, NodeEd25519Verifier>()
  return {
    parse(did: API.DID): API.Verifier {
      const hit = cache.get(did)
      if (hit !== undefined) {
        cache.delete(did)
        cache.set(did, hit)
        return hit
      }
      let key: API.Verifier<API.DIDKey> & { publicKey?: Uint8Array }
      try {
        key = ed25519.Verifier.parse(did) as API.Verifier<API.DIDKey> & { publicKey?: Uint8Array }
      } catch {
        return DefaultVerifier.parse(did)
      }
      const publicKey = key.publicKey
      if (publicKey === undefined || publicKey.byteLength !== KEY_SIZE) return key
      const verifier = new NodeEd25519Verifier(key.did(), publicKey)
      cache.set(did, verifier)
      if (cache.size > max) cache.delete(cache.keys().next().value as string)
      return verifier
    },
  }
}

/**
 * A ucanto Ed25519 `Signer` for the same key as `signer`, signing in native code (ed25519.ts; same bytes:
 * Ed25519 is deterministic). Everything but `sign`/`verify` is delegated to `signer`; `withDID`
 * keeps the fast path. Use it as the service identity so receipts are cheap to sign.
 */
export function createFastSigner(signer: ed25519.EdSigner): ed25519.EdSigner {
  return new NodeEd25519Signer(signer)
}

class NodeEd25519Signer implements ed25519.EdSigner {
  readonly #inner: ed25519.EdSigner
  readonly #private: Ed25519PrivateKey
  readonly #verifier: NodeEd25519Verifier
  /** The did:key, formatted once (ucanto's signer base58-encodes it on every call). */
  readonly #did: API.DIDKey

  constructor(inner: ed25519.EdSigner) {
    const bytes = inner.encode()
    // ed25519-private-key (varint 0x1300, 2 bytes) ‖ seed ‖ ed25519-pub (varint 0xed, 2 bytes) ‖ public key
    if (bytes.byteLength !== 2 + KEY_SIZE + 2 + KEY_SIZE) throw new TypeError('not an Ed25519 signer')
    this.#inner = inner
    this.#private = ed25519PrivateKey(bytes.subarray(2, 2 + KEY_SIZE))
    this.#did = inner.did()
    this.#verifier = new NodeEd25519Verifier(this.#did, bytes.subarray(2 + KEY_SIZE + 2))
  }

  get code(): 0x1300 {
    return 0x1300
  }
  get signer(): ed25519.EdSigner {
    return this
  }
  get verifier(): ed25519.EdVerifier {
    return this.#verifier
  }
  get signatureCode(): EdSigAlg {
    return EDDSA as EdSigAlg
  }
  get signatureAlgorithm(): 'EdDSA' {
    return 'EdDSA'
  }
  did(): API.DIDKey {
    return this.#did
  }
  toDIDKey(): API.DIDKey {
    return this.#did
  }
  async sign<T>(payload: API.ByteView<T>): Promise<API.SignatureView<T, EdSigAlg>> {
    return Signature.create(EDDSA as EdSigAlg, this.#private.sign(payload))
  }
  verify<T>(payload: API.ByteView<T>, signature: API.Signature<T, EdSigAlg>): boolean {
    return this.#verifier.verify(payload, signature)
  }
  withDID<ID extends API.DID>(id: ID): API.Signer<ID, EdSigAlg> {
    return new SignerWithDID(id, this)
  }
  encode(): ReturnType<ed25519.EdSigner['encode']> {
    return this.#inner.encode()
  }
  toArchive(): ReturnType<ed25519.EdSigner['toArchive']> {
    return this.#inner.toArchive()
  }
}

/** A signer whose key is `key` but whose DID is another method's (e.g. did:web). */
class SignerWithDID<ID extends API.DID> implements API.Signer<ID, EdSigAlg> {
  constructor(
    readonly id: ID,
    readonly key: NodeEd25519Signer,
  ) {}
  get signer(): API.Signer<ID, EdSigAlg> {
    return this
  }
  get verifier(): API.Verifier<ID, EdSigAlg> {
    return this.key.verifier.withDID(this.id) as API.Verifier<ID, EdSigAlg>
  }
  get signatureCode(): EdSigAlg {
    return this.key.signatureCode
  }
  get signatureAlgorithm(): 'EdDSA' {
    return 'EdDSA'
  }
  did(): ID {
    return this.id
  }
  toDIDKey(): API.DIDKey {
    return this.key.toDIDKey()
  }
  sign<T>(payload: API.ByteView<T>): Promise<API.SignatureView<T, EdSigAlg>> {
    return this.key.sign(payload)
  }
  verify<T>(payload: API.ByteView<T>, signature: API.Signature<T, EdSigAlg>): boolean {
    return this.key.verify(payload, signature)
  }
  withDID<Other extends API.DID>(id: Other): API.Signer<Other, EdSigAlg> {
    return new SignerWithDID(id, this.key)
  }
  encode(): Uint8Array {
    return this.key.encode()
  }
  toArchive(): API.SignerArchive<ID, EdSigAlg> {
    const { keys } = this.key.toArchive()
    return { id: this.id, keys } as API.SignerArchive<ID, EdSigAlg>
  }
}
