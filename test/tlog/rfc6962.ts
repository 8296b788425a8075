/**
 * A deliberately naive transcription of the RFC 6962 §2.1 definitions — MTH, PATH (§2.1.1) and
 * PROOF/SUBPROOF (§2.1.2) — over an explicit list of leaf hashes, with its own SHA-256 calls, as the
 * reference the optimized src/tlog code is checked against. Memoizes MTH so exhaustive tests stay fast.
 */
import { createHash } from 'node:crypto'

type Hash = Uint8Array

function sha256(...parts: Uint8Array[]): Hash {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

/** RFC 6962 leaf hash: SHA-256(0x00 || data). */
export function refLeafHash(data: Uint8Array): Hash {
  return sha256(Uint8Array.of(0), data)
}

/** The largest power of two strictly less than n (n ≥ 2). */
function split(n: number): number {
  let k = 1
  while (2 * k < n) k *= 2
  return k
}

export class ReferenceTree {
  readonly leaves: readonly Hash[]
  readonly #memo = new Map<string, Hash>()

  constructor(leaves: readonly Hash[]) {
    this.leaves = leaves
  }

  /** MTH(D[lo:hi]). */
  mth(lo: number, hi: number): Hash {
    if (hi === lo) return sha256()
    if (hi - lo === 1) return this.leaves[lo]!
    const key = `${lo},${hi}`
    let h = this.#memo.get(key)
    if (h === undefined) {
      const k = split(hi - lo)
      h = sha256(Uint8Array.of(1), this.mth(lo, lo + k), this.mth(lo + k, hi))
      this.#memo.set(key, h)
    }
    return h
  }

  /** PATH(m, D[lo:hi]), m relative to lo. */
  path(m: number, lo: number, hi: number): Hash[] {
    const n = hi - lo
    if (n === 1) return []
    const k = split(n)
    if (m < k) return [...this.path(m, lo, lo + k), this.mth(lo + k, hi)]
    return [...this.path(m - k, lo + k, hi), this.mth(lo, lo + k)]
  }

  /** PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true). */
  proof(m: number, n: number): Hash[] {
    return this.subproof(m, 0, n, true)
  }

  /** SUBPROOF(m, D[lo:hi], b), m relative to lo. */
  subproof(m: number, lo: number, hi: number, b: boolean): Hash[] {
    const n = hi - lo
    if (m === n) return b ? [] : [this.mth(lo, hi)]
    const k = split(n)
    if (m <= k) return [...this.subproof(m, lo, lo + k, b), this.mth(lo + k, hi)]
    return [...this.subproof(m - k, lo + k, hi, false), this.mth(lo, lo + k)]
  }
}
