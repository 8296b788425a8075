/**
 * The verified-UCAN cache: UCANs (by CID) whose block was found to be the canonical encoding under
 * its CID and whose issuer's signature verified. Both facts are functions of the block's bytes
 * alone, so they hold for as long as the same bytes come back; nothing time-dependent (`exp`,
 * `nbf`), nothing about a chain (audiences, capabilities), nothing about revocation is cached here.
 * The chain check (chain.ts) consults it so that a Space→Agent proof sent with every append of an
 * agent is hashed but not re-encoded nor re-verified; the content-address check (delegation.ts)
 * skips the re-encoding of a cached UCAN whose bytes hash to its CID.
 */
import { createHash } from 'node:crypto'
import type { API } from '@ucanto/core'
import { CID } from 'multiformats/cid'

/** Entries a {@link createVerifiedUcanCache} keeps by default. */
export const DEFAULT_MAX_VERIFIED_UCANS = 10_000

/** Bytes (as counted by {@link VerifiedUcanCache.bytes}) a {@link createVerifiedUcanCache} keeps by default: 4 MiB. */
export const DEFAULT_MAX_VERIFIED_UCAN_BYTES = 4 * 2 ** 20

/**
 * What one entry is counted as, in bytes, besides its key (two bytes per character of the CID
 * string): the Map slot, the entry string's header and the number (an estimate of V8's cost).
 */
export const VERIFIED_UCAN_ENTRY_OVERHEAD = 96

/** Multicodec of dag-cbor, the only UCAN block encoding cached. */
const DAG_CBOR_CODE = 0x71
/** Multicodec of sha2-256, the only CID hash cached. */
const SHA256_CODE = 0x12

/**
 * UCANs known canonical and validly signed, by CID. Bounded by entries and bytes; least recently
 * used first out. Two shares: proofs (UCANs below the delegation an invocation carries, chiefly
 * Space→Agent) get three quarters of each bound, the delegations themselves (Agent→Service, a
 * new one per append under some loads) a quarter, so a flood of distinct delegations cannot push
 * out the proofs every append of an agent reuses.
 */
export interface VerifiedUcanCache {
  /**
   * Whether `ucan` is known canonical and validly signed: its CID is cached, is dag-cbor over
   * sha2-256, and its block's bytes hash to it (so they are the bytes that were verified).
   * A hit refreshes the entry.
   */
  has(ucan: API.Delegation): boolean
  /**
   * Remembers `ucan`, in the delegations' share when `o.delegation` (the top of a chain), else in
   * the proofs'. The caller must have checked both facts for these exact bytes (the block is the
   * canonical encoding under its CID, and the issuer's signature over it verifies). Only
   * dag-cbor/sha2-256 CIDs are kept.
   */
  add(ucan: API.Delegation, o?: { delegation?: boolean }): void
  /**
   * Remembers the UCAN under CID `id` as {@link add} does, from its CID alone: for UCANs checked
   * by another thread (preverify.ts), which hashed the bytes to this CID there. {@link has} still
   * hashes the bytes it is given, so only these bytes ever match. Ignored unless `id` parses as a
   * dag-cbor/sha2-256 CID.
   */
  addCid(id: string, o?: { delegation?: boolean }): void
  /** Entries held (both shares). */
  readonly size: number
  /** Bytes held, as counted: Σ (2 × CID string length + {@link VERIFIED_UCAN_ENTRY_OVERHEAD}). */
  readonly bytes: number
}

/** Options of {@link createVerifiedUcanCache}. */
export interface VerifiedUcanCacheOptions {
  /** Most entries; positive integer, default {@link DEFAULT_MAX_VERIFIED_UCANS} (a quarter, rounded down, for delegations). */
  maxEntries?: number
  /** Most bytes (see {@link VerifiedUcanCache.bytes}); integer ≥ 1, default {@link DEFAULT_MAX_VERIFIED_UCAN_BYTES} (a quarter, rounded down, for delegations). */
  maxBytes?: number
}

/** One least-recently-used share: CID string → its counted bytes. */
class Share {
  readonly entries = new Map<string, number>()
  bytes = 0
  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number,
  ) {}

  /** Refreshes `id` if held; whether it was. */
  touch(id: string): boolean {
    const cost = this.entries.get(id)
    if (cost === undefined) return false
    this.entries.delete(id)
    this.entries.set(id, cost)
    return true
  }

  delete(id: string): void {
    const cost = this.entries.get(id)
    if (cost === undefined) return
    this.entries.delete(id)
    this.bytes -= cost
  }

  /** Adds (or refreshes) `id`, then evicts the least recently used past either bound. */
  set(id: string, cost: number): void {
    this.delete(id)
    this.entries.set(id, cost)
    this.bytes += cost
    while (this.entries.size > 0 && (this.entries.size > this.maxEntries || this.bytes > this.maxBytes)) {
      const [oldest, c] = this.entries.entries().next().value as [string, number]
      this.entries.delete(oldest)
      this.bytes -= c
    }
  }
}

/**
 * An in-memory {@link VerifiedUcanCache}.
 * @throws RangeError unless `maxEntries` and `maxBytes` are positive safe integers.
 */
export function createVerifiedUcanCache(options: VerifiedUcanCacheOptions = {}): VerifiedUcanCache {
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_VERIFIED_UCANS
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_VERIFIED_UCAN_BYTES
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer')
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new RangeError('maxBytes must be a positive integer')
  const delegations = new Share(Math.floor(maxEntries / 4), Math.floor(maxBytes / 4))
  const proofs = new Share(maxEntries - delegations.maxEntries, maxBytes - delegations.maxBytes)
  const remember = (id: string, delegation: boolean): void => {
    const cost = 2 * id.length + VERIFIED_UCAN_ENTRY_OVERHEAD
    if (delegation) {
      // A UCAN also used as a proof stays in the proofs' share.
      if (!proofs.touch(id)) delegations.set(id, cost)
    } else {
      delegations.delete(id)
      proofs.set(id, cost)
    }
  }
  return {
    has(ucan) {
      const id = ucan.cid.toString()
      if (!proofs.entries.has(id) && !delegations.entries.has(id)) return false
      if (!sameBytes(ucan)) return false
      return proofs.touch(id) || delegations.touch(id)
    },
    add(ucan, o = {}) {
      const cid = ucan.cid
      if (cid.code !== DAG_CBOR_CODE || cid.multihash.code !== SHA256_CODE) return
      remember(cid.toString(), o.delegation === true)
    },
    addCid(id, o = {}) {
      let cid: CID
      try {
        cid = CID.parse(id)
      } catch {
        return
      }
      if (cid.code !== DAG_CBOR_CODE || cid.multihash.code !== SHA256_CODE || cid.toString() !== id) return
      remember(id, o.delegation === true)
    },
    get size() {
      return proofs.entries.size + delegations.entries.size
    },
    get bytes() {
      return proofs.bytes + delegations.bytes
    },
  }
}

/**
 * Whether `ucan`'s block is dag-cbor under a sha2-256 CID that its bytes hash to (so they are the
 * bytes that CID names), that CID being written in its one canonical form: CIDv1, minimal varints,
 * a 32-byte digest (`01 71 12 20` + digest). A CID reader keeps a multihash's non-minimal varints
 * (`92 00` for 0x12), which give the same block a second CID string: the replay guard, the
 * revocation store and the caches here are keyed by that string.
 */
export function sameBytes(ucan: API.Delegation): boolean {
  const { cid, bytes } = ucan.root
  if (cid.code !== DAG_CBOR_CODE || cid.multihash.code !== SHA256_CODE) return false
  const id = cid.bytes
  const mh = cid.multihash.bytes
  if (id.length !== 36 || id[0] !== 0x01 || id[1] !== DAG_CBOR_CODE || id[2] !== SHA256_CODE || id[3] !== 32) return false
  if (mh.length !== 34 || mh[0] !== SHA256_CODE || mh[1] !== 32) return false
  const digest = createHash('sha256').update(bytes).digest()
  return digest.equals(id.subarray(4)) && digest.equals(cid.multihash.digest)
}

/** Delegation objects (this process's, by identity) that {@link markCanonical} was told about. */
const canonical = new WeakSet<API.Delegation>()

/**
 * Notes that this Delegation object's block was found to be the canonical encoding under its CID
 * (delegation.ts `checkContentAddressed`), so that the chain check may cache it once its signature
 * verifies. Objects are immutable views of their block; the note dies with the object.
 */
export function markCanonical(ucan: API.Delegation): void {
  canonical.add(ucan)
}

/** Delegation objects (this process's, by identity) whose bytes another thread verified (preverify.ts). */
const preverified = new WeakSet<API.Delegation>()

/**
 * Notes that this Delegation object's block is canonical under its CID and validly signed, as
 * another thread found for the bytes under that CID (preverify.ts), once its own bytes hash to
 * that CID; otherwise notes nothing. Whether it was noted.
 */
export function markPreverified(ucan: API.Delegation): boolean {
  if (!sameBytes(ucan)) return false
  preverified.add(ucan)
  canonical.add(ucan)
  return true
}

/** Whether {@link markPreverified} noted this Delegation object: canonical and validly signed. */
export function isPreverified(ucan: API.Delegation): boolean {
  return preverified.has(ucan)
}

/** Whether {@link markCanonical} was called for this Delegation object. */
export function isCanonical(ucan: API.Delegation): boolean {
  return canonical.has(ucan)
}
