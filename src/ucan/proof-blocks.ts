/**
 * Proof blocks seen before, so a proof an agent sends with every append is decoded once per
 * thread rather than once per append (issue 11). Every `nb.delegation` archive of an agent embeds
 * the same Space→Agent proof block; ucanto decodes a UCAN block into its view lazily and memoizes
 * the view by the block's bytes object (@ucanto/core `delegation.js`, a WeakMap), which is new in
 * every archive. {@link reuseProofBlocks} puts, in a freshly decoded delegation's block map, the
 * block object seen before under the same CID with the same bytes, so ucanto's memo answers.
 *
 * Nothing is trusted from this cache: a block is reused only for byte-identical bytes under the
 * same CID key, and decoding is a function of the bytes alone, so every check (content address,
 * signature, time bounds, chain) sees exactly what it would have decoded itself. A forged block
 * (bytes that do not hash to their key) is reused only for the same forged bytes, and fails the
 * same checks.
 *
 * Bounded per thread by bytes (`--proof-block-cache-bytes`): each block counts
 * {@link VIEW_FACTOR} times its length (the bytes and the decoded view ucanto keeps alive with
 * them), least recently used first out.
 */
import type { API } from '@ucanto/core'
import { CID } from 'multiformats/cid'
import { ByteLru } from '../storage/byte-lru.js'

/** Default bytes of each thread's proof-block cache (`--proof-block-cache-bytes`): 1 MiB, ~250 proofs. */
export const DEFAULT_PROOF_BLOCK_CACHE_BYTES = 2 ** 20

/** What a cached block is counted as, in multiples of its length: the bytes plus ucanto's decoded view of them. */
export const VIEW_FACTOR = 4

let cache = new ByteLru<string, API.Block>(DEFAULT_PROOF_BLOCK_CACHE_BYTES)

/**
 * Sets this thread's cache bound, in bytes (integer ≥ 0; 0 keeps nothing), dropping what it held.
 * @throws RangeError for a bound that is not an integer ≥ 0.
 */
export function setProofBlockCacheBytes(maxBytes: number): void {
  cache = new ByteLru(maxBytes)
}

/** Bytes this thread's cache holds now, as counted against its bound. */
export function proofBlockCacheBytes(): number {
  return cache.bytes
}

/**
 * In `delegation`'s block map (ucanto's, keyed by CID string), replaces each block the delegation
 * names as a direct proof by the block object held under the same key with the same bytes, and
 * remembers the others. Only direct proofs: the other blocks of an archive (its root variant, new
 * in every archive; proofs of proofs) would only churn the cache on every append. Call before
 * anything reads the delegation's proofs (ucanto materializes them on first read).
 * @throws the decoder's error when the delegation's own block does not decode (as reading any of
 *   its fields would).
 */
export function reuseProofBlocks(delegation: API.Delegation): void {
  if (cache.maxBytes === 0) return
  const blocks = (delegation as unknown as { blocks?: Map<string, API.Block> }).blocks
  if (!(blocks instanceof Map)) return
  for (const link of delegation.data.proofs) {
    const key = link.toString()
    const block = blocks.get(key)
    if (block === undefined) continue
    const known = cache.get(key)
    if (known !== undefined && Buffer.compare(known.bytes, block.bytes) === 0) {
      blocks.set(key, known)
    } else {
      // Kept as a copy, CID included: the block's bytes are a view into the whole archive (often a
      // slab of Buffer's pool, 8 KiB shared by several requests), which must not stay alive for the
      // sake of one block. This delegation uses the copy too, so it is the one decoded.
      const own = { cid: CID.decode(new Uint8Array(block.cid.bytes)), bytes: new Uint8Array(block.bytes) } as API.Block
      cache.set(key, own, VIEW_FACTOR * own.bytes.byteLength)
      blocks.set(key, own)
    }
  }
}
