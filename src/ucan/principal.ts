/**
 * Ed25519 UCAN principals backed by `node:crypto` (OpenSSL), for ucanto.
 *
 * ucanto verifies and signs Ed25519 (RFC 8032) with `@noble/ed25519` in pure JS — about 330
 * verifies/s and 1,500 signs/s on a 2-vCPU machine, while OpenSSL does about 20× that. Signatures
 * are the UCAN varsig `EdDSA` (multicodec 0xd0ed) over the UCAN signing payload; keys are
 * `did:key:z6Mk…` (multicodec 0xed + 32-byte public key).
 *
 * Semantics are ucanto's: Ed25519 is deterministic, so {@link createFastSigner} produces the same
 * signature bytes as ucanto's signer, and {@link createPrincipalParser} accepts exactly the
 * signatures ucanto's `Verifier` accepts. Both reject a non-canonical `S ≥ L`, so signatures are
 * not malleable; where ucanto throws on a malformed signature (R not a curve point, S ≥ L), this
 * returns false. Non-Ed25519 DIDs (RSA did:keys) go to ucanto's `Verifier`.
 */
import * as crypto from 'node:crypto'
import type { API } from '@ucanto/core'
import { Verifier as DefaultVerifier, ed25519 } from '@ucanto/principal'
import { Signature } from '@ucanto/core'

/** Multicodec of the UCAN `EdDSA` varsig. */
const EDDSA = 0xd0ed
/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4); the 32-byte key follows. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
/** DER prefix of an Ed25519 PKCS #8 private key (RFC 8410 §7); the 32-byte seed follows. */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
/** Length of an Ed25519 public key or seed, in bytes. */
const KEY_SIZE = 32

/** How many parsed did:key verifiers {@link createPrincipalParser} keeps by default. */
export const DEFAULT_MAX_CACHED_KEYS = 10_000

type EdSigAlg = ed25519.SigAlg

/** A ucanto Ed25519 `Verifier` for one did:key whose `verify` runs in OpenSSL. */
class NodeEd25519Verifier implements ed25519.EdVerifier {
  readonly #id: API.DIDKey
  readonly #key: crypto.KeyObject

  constructor(id: API.DIDKey, publicKey: Uint8Array) {
    this.#id = id
    this.#key = crypto.createPublicKey({
      key: Buffer.concat([SPKI_PREFIX, publicKey]),
      format: 'der',
      type: 'spki',
    })
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
      return crypto.verify(null, payload, this.#key, signature.raw)
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
 * verifies Ed25519 did:keys with `node:crypto` and hands every other DID to ucanto's default
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
 * A ucanto Ed25519 `Signer` for the same key as `signer`, signing with `node:crypto` (same bytes:
 * Ed25519 is deterministic). Everything but `sign`/`verify` is delegated to `signer`; `withDID`
 * keeps the fast path. Use it as the service identity so receipts are cheap to sign.
 */
export function createFastSigner(signer: ed25519.EdSigner): ed25519.EdSigner {
  return new NodeEd25519Signer(signer)
}

class NodeEd25519Signer implements ed25519.EdSigner {
  readonly #inner: ed25519.EdSigner
  readonly #private: crypto.KeyObject
  readonly #verifier: NodeEd25519Verifier
  /** The did:key, formatted once (ucanto's signer base58-encodes it on every call). */
  readonly #did: API.DIDKey

  constructor(inner: ed25519.EdSigner) {
    const bytes = inner.encode()
    // ed25519-private-key (varint 0x1300, 2 bytes) ‖ seed ‖ ed25519-pub (varint 0xed, 2 bytes) ‖ public key
    if (bytes.byteLength !== 2 + KEY_SIZE + 2 + KEY_SIZE) throw new TypeError('not an Ed25519 signer')
    this.#inner = inner
    this.#private = crypto.createPrivateKey({
      key: Buffer.concat([PKCS8_PREFIX, bytes.subarray(2, 2 + KEY_SIZE)]),
      format: 'der',
      type: 'pkcs8',
    })
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
    const raw = crypto.sign(null, payload, this.#private)
    return Signature.create(EDDSA as EdSigAlg, new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength))
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
