/**
 * RFC 6962 §2.1 Merkle tree hashing (SHA-256) and the dense "stored hash" numbering of tree nodes
 * used by golang.org/x/mod/sumdb/tlog, c2sp.org/tlog-tiles logs and this service's storage.
 *
 * A tree of `size` entries has leaves numbered 0 ≤ n < size. The node at level L, position n is the
 * root of the complete subtree over leaves [n·2^L, (n+1)·2^L). Every complete subtree gets one stored
 * hash; they are numbered in the order a log writes them (leaf n, then the subtrees leaf n completes),
 * so appending leaf n appends exactly `storedHashes(n, …)` to a flat array of hashes.
 */
import * as crypto from 'node:crypto'
import { createHash } from 'node:crypto'

/** node:crypto's one-shot `hash` (Node ≥ 20.12): no Hash object per call, so far less garbage. */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'buffer') => Uint8Array }).hash

/** SHA-256 output size in bytes (RFC 6962 §2.1). */
export const HASH_SIZE = 32

/** A SHA-256 Merkle tree hash: a 32-byte Uint8Array (leaf, interior node or root). */
export type Hash = Uint8Array

/**
 * MTH({}) = SHA-256(""), the root hash of the empty tree (RFC 6962 §2.1):
 * `e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`. Shared; do not mutate.
 */
export const EMPTY_ROOT: Hash = new Uint8Array(createHash('sha256').digest())

const LEAF_PREFIX = new Uint8Array([0x00])

/**
 * The RFC 6962 §2.1 leaf hash of a log entry: SHA-256(0x00 || entry), a 32-byte Uint8Array.
 * This is the hash stored in level-0 tiles (c2sp.org/tlog-tiles) for the entry.
 */
export function leafHash(entry: Uint8Array): Hash {
  return new Uint8Array(createHash('sha256').update(LEAF_PREFIX).update(entry).digest())
}

/**
 * The RFC 6962 §2.1 interior node hash: SHA-256(0x01 || left || right).
 * @throws RangeError unless `left` and `right` are both 32 bytes.
 */
export function nodeHash(left: Hash, right: Hash): Hash {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) {
    throw new RangeError(`nodeHash: hashes must be ${HASH_SIZE} bytes, got ${left.length} and ${right.length}`)
  }
  nodeInput.set(left, 1)
  nodeInput.set(right, 1 + HASH_SIZE)
  return new Uint8Array(oneShotHash ? oneShotHash('sha256', nodeInput, 'buffer') : createHash('sha256').update(nodeInput).digest())
}


/**
 * The row of interior nodes above `row` (RFC 6962 §2.1): for hashes h0 h1 h2 h3 … (32 bytes each,
 * concatenated), SHA-256(0x01 || h0 || h1), SHA-256(0x01 || h2 || h3), …; a trailing odd hash is
 * dropped. Same hashes as {@link nodeHash} pair by pair, computed with one buffer per row (readers
 * building a tile's inner levels call it for up to 255 nodes per tile).
 * @param row k·32 bytes, k ≥ 0.
 * @returns ⌊k/2⌋·32 bytes.
 * @throws RangeError when `row` is not a whole number of hashes.
 */
export function parentRow(row: Uint8Array): Uint8Array {
  if (row.length % HASH_SIZE !== 0) throw new RangeError(`parentRow: ${row.length} bytes is not a whole number of hashes`)
  const n = Math.floor(row.length / HASH_SIZE / 2)
  const out = new Uint8Array(n * HASH_SIZE)
  for (let j = 0; j < n; j++) {
    nodeInput.set(row.subarray(2 * j * HASH_SIZE, (2 * j + 2) * HASH_SIZE), 1)
    out.set(oneShotHash ? oneShotHash('sha256', nodeInput, 'buffer') : createHash('sha256').update(nodeInput).digest(), j * HASH_SIZE)
  }
  return out
}

/** Scratch input 0x01 || left || right for nodeHash (one update call is measurably faster). */
const nodeInput = new Uint8Array(1 + 2 * HASH_SIZE)
nodeInput[0] = 0x01

/**
 * A source of previously stored hashes of one tree, addressed by stored-hash index
 * (see {@link storedHashIndex}).
 *
 * Contract: `readHashes` resolves to exactly one 32-byte hash per requested index, in the order
 * requested, or rejects. The functions in this module always request indexes in strictly increasing
 * order, in one call per operation, so a reader can batch its I/O.
 */
export interface HashReader {
  readHashes(indexes: readonly number[]): Promise<Hash[]>
}

/** Throws RangeError unless `v` is an integer in [0, Number.MAX_SAFE_INTEGER]. */
function checkCount(what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${v}`)
}

/** Number of trailing zero bits of the positive integer x (exact for x ≤ 2^53). */
function trailingZeros(x: number): number {
  let z = 0
  while (x % 2 === 0) {
    x /= 2
    z++
  }
  return z
}

/**
 * k = the largest power of two strictly less than n (n ≥ 2), and level = log2(k): the RFC 6962 §2.1
 * split point of a tree of n leaves. Internal to src/tlog (not re-exported by index.ts).
 */
export function maxPow2(n: number): { k: number; level: number } {
  let k = 1
  let level = 0
  while (k * 2 < n) {
    k *= 2
    level++
  }
  return { k, level }
}

/**
 * The stored-hash index of the node at `level` (0 = leaves), position `n` (x/mod
 * `StoredHashIndex`; Crosby–Wallach §3.3 post-order). Hashes are numbered in the order a log
 * appends them — leaf n, then the roots of the complete subtrees leaf n closes, lowest first — so
 * the node (L, n) is stored right after its right child (L−1, 2n+1).
 * @param level 0 ≤ level ≤ 63.
 * @param n 0 ≤ n, position within the level.
 * @throws RangeError on an invalid level or n, or if the index would exceed 2^53 − 1.
 */
export function storedHashIndex(level: number, n: number): number {
  if (!Number.isInteger(level) || level < 0 || level > 63) throw new RangeError(`level must be an integer in 0..63, got ${level}`)
  checkCount('n', n)
  // The level-0 position of the last leaf under this node: n·2^level + 2^level − 1.
  const pow = 2 ** level
  let m = n * pow + (pow - 1)
  if (!Number.isSafeInteger(m)) throw new RangeError(`stored hash index of (${level}, ${n}) is out of range`)
  // Leaf m is stored at m + ⌊m/2⌋ + ⌊m/4⌋ + …
  let i = 0
  while (m > 0) {
    i += m
    m = Math.floor(m / 2)
  }
  i += level
  if (!Number.isSafeInteger(i)) throw new RangeError(`stored hash index of (${level}, ${n}) is out of range`)
  return i
}

/**
 * The inverse of {@link storedHashIndex}: the (level, n) coordinates of stored hash `index`.
 * @throws RangeError unless `index` is a non-negative safe integer.
 */
export function splitStoredHashIndex(index: number): { level: number; n: number } {
  checkCount('stored hash index', index)
  // storedHashIndex(0, n) ≤ 2n, so the leaf written just before (or at) index is at least ⌊index/2⌋.
  let n = Math.floor(index / 2)
  let indexN = storedHashIndex(0, n)
  for (;;) {
    // Leaf n is followed by 1 + trailingZeros(n+1) hashes (itself and the subtrees it completes).
    const next = indexN + 1 + trailingZeros(n + 1)
    if (next > index) break
    n++
    indexN = next
  }
  const level = index - indexN
  return { level, n: Math.floor(n / 2 ** level) }
}

/**
 * The number of stored hashes of a tree of `size` entries (x/mod `StoredHashCount`): the length
 * of the flat hash array after appending `size` leaves.
 * @throws RangeError unless `size` is a non-negative safe integer.
 */
export function storedHashCount(size: number): number {
  checkCount('size', size)
  if (size === 0) return 0
  let count = storedHashIndex(0, size - 1) + 1
  for (let i = size - 1; i % 2 === 1; i = (i - 1) / 2) count++
  return count
}

function checkReadResult(hashes: Hash[], want: number): void {
  if (!Array.isArray(hashes) || hashes.length !== want) {
    throw new Error(`tlog: readHashes(${want} indexes) returned ${Array.isArray(hashes) ? hashes.length : typeof hashes} hashes`)
  }
  for (const h of hashes) {
    if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) throw new Error('tlog: readHashes returned a hash that is not 32 bytes')
  }
}

/**
 * The stored hashes to append, in order, starting at `storedHashIndex(0, n)`, when leaf `n` (the
 * (n+1)th entry) with leaf hash `leaf` is added to a tree of `n` entries (x/mod
 * `StoredHashesForRecordHash`): the leaf hash itself and the root of each complete subtree that leaf
 * completes — 1 + trailingZeros(n+1) hashes. Reads up to log2(n) earlier hashes from `r` in one call.
 * @param n 0 ≤ n, the index of the new leaf (= the current tree size).
 * @param leaf 32-byte RFC 6962 leaf hash, see {@link leafHash}.
 * @throws RangeError on an invalid `n` or a leaf hash that is not 32 bytes.
 */
export async function storedHashes(n: number, leaf: Hash, r: HashReader): Promise<Hash[]> {
  checkCount('n', n)
  if (leaf.length !== HASH_SIZE) throw new RangeError(`leaf hash must be ${HASH_SIZE} bytes, got ${leaf.length}`)
  // Each trailing 1 bit of n completes a subtree with the left sibling at that level.
  const m = trailingZeros(n + 1)
  const indexes = new Array<number>(m)
  for (let i = 0; i < m; i++) indexes[m - 1 - i] = storedHashIndex(i, Math.floor(n / 2 ** i) - 1)
  const siblings = m === 0 ? [] : await r.readHashes(indexes)
  checkReadResult(siblings, m)
  const out: Hash[] = [leaf]
  let h = leaf
  for (let i = 0; i < m; i++) {
    h = nodeHash(siblings[m - 1 - i]!, h)
    out.push(h)
  }
  return out
}

/**
 * Appends to `need` the stored-hash indexes of the complete subtrees that make up the leaves
 * [lo, hi), largest (leftmost) first, in increasing index order. lo must be aligned so that each
 * such subtree is a stored node (true for every range the RFC 6962 recursion produces).
 * Internal to src/tlog (not re-exported by index.ts).
 */
export function subTreeIndex(lo: number, hi: number, need: number[]): number[] {
  while (lo < hi) {
    const { k, level } = maxPow2(hi - lo + 1)
    if (lo % k !== 0) throw new Error('tlog: bad math in subTreeIndex')
    need.push(storedHashIndex(level, lo / k))
    lo += k
  }
  return need
}

/**
 * Computes MTH(D[lo:hi]) from `hashes[at…]`, the stored hashes listed by
 * `subTreeIndex(lo, hi)`, and returns it with the position after the ones consumed.
 * Internal to src/tlog (not re-exported by index.ts).
 */
export function subTreeHash(lo: number, hi: number, hashes: readonly Hash[], at: number): { hash: Hash; next: number } {
  let count = 0
  while (lo < hi) {
    lo += maxPow2(hi - lo + 1).k
    count++
  }
  if (count === 0 || at + count > hashes.length) throw new Error('tlog: bad index math in subTreeHash')
  let h = hashes[at + count - 1]!
  for (let i = at + count - 2; i >= at; i--) h = nodeHash(hashes[i]!, h)
  return { hash: h, next: at + count }
}

/**
 * The RFC 6962 §2.1 root hash MTH(D[0:size]) of the tree of the first `size` entries, from at most
 * 1 + log2(size) stored hashes read from `r` in one call (x/mod `TreeHash`, except that the empty
 * tree's root is {@link EMPTY_ROOT} = SHA-256(""), not all zeros).
 * @returns a 32-byte hash.
 * @throws RangeError unless `size` is a non-negative safe integer.
 */
export async function treeHash(size: number, r: HashReader): Promise<Hash> {
  checkCount('size', size)
  if (size === 0) return EMPTY_ROOT.slice()
  const indexes = subTreeIndex(0, size, [])
  const hashes = await r.readHashes(indexes)
  checkReadResult(hashes, indexes.length)
  const { hash, next } = subTreeHash(0, size, hashes, 0)
  if (next !== hashes.length) throw new Error('tlog: bad index math in treeHash')
  return hash
}

/**
 * An in-memory, append-only array of the stored hashes of one tree, for tests, benchmarks and
 * batching: `append(leaf)` stores the hashes {@link storedHashes} would return, and the store is a
 * {@link HashReader} over them. Hashes are copied in and out, so callers cannot corrupt it.
 */
export class MemoryHashStore implements HashReader {
  readonly #hashes: Hash[] = []
  #size = 0

  /** The number of entries (leaves) appended so far. */
  get size(): number {
    return this.#size
  }

  /** The number of stored hashes held, always `storedHashCount(size)`. */
  get storedCount(): number {
    return this.#hashes.length
  }

  /**
   * Appends one leaf (a 32-byte RFC 6962 leaf hash, see {@link leafHash}) and the hashes of the
   * complete subtrees it closes.
   * @returns the new leaf's index (the tree size before the call).
   * @throws RangeError if `leaf` is not 32 bytes.
   */
  append(leaf: Hash): number {
    if (leaf.length !== HASH_SIZE) throw new RangeError(`leaf hash must be ${HASH_SIZE} bytes, got ${leaf.length}`)
    const n = this.#size
    let h: Hash = leaf.slice()
    this.#hashes.push(h)
    // While the node at position m of this level is a right child, combine it with its sibling m−1.
    for (let level = 0, m = n; m % 2 === 1; level++, m = (m - 1) / 2) {
      h = nodeHash(this.#hashes[storedHashIndex(level, m - 1)]!, h)
      this.#hashes.push(h)
    }
    this.#size = n + 1
    return n
  }

  /**
   * Reads stored hashes by index (HashReader).
   * @throws RangeError if any index is not in 0 ≤ index < storedCount.
   */
  async readHashes(indexes: readonly number[]): Promise<Hash[]> {
    return indexes.map((i) => {
      const h = Number.isSafeInteger(i) ? this.#hashes[i] : undefined
      if (h === undefined) throw new RangeError(`stored hash index ${i} not in 0..${this.#hashes.length - 1}`)
      return h.slice()
    })
  }
}

/**
 * Whether two byte strings (hashes, tiles) are equal: same length and same bytes. Compares every
 * byte whatever the first difference, so the time taken does not depend on where they differ.
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!
  return d === 0
}
