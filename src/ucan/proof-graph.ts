/**
 * A cheap structural check of a UCAN proof graph, run before anything walks it.
 *
 * ucanto walks proofs once per *path*, not once per block: its DAG export (every receipt echoes
 * the invocation it ran, and the grant probe exports `nb.delegation`) and its validator follow
 * every `prf` link without remembering what they visited. A UCAN that lists its next proof twice,
 * or a ladder of diamonds (A→[B,C], B→[D], C→[D], …), has 2^depth paths over a few dozen blocks,
 * so a few KB would cost minutes of CPU. This check walks each distinct block once (by CID, with
 * a visited set), counts paths by dynamic programming over distinct blocks (never enumerating
 * them), and refuses duplicate links in one `prf` list, cycles and graphs over a budget, with
 * named errors. Its own cost is O(blocks + links), bounded by the budget.
 */
import type { API } from '@ucanto/core'
import { Delegation } from '@ucanto/core'

/** The (empty) block store of the one-block views {@link checkProofGraph} decodes through. */
const NO_BLOCKS: Map<string, API.Block> = new Map()
import { DuplicateProof, ProofCycle, type ProofGraphFailure, ProofGraphTooLarge } from './errors.js'

/** Limits of a proof graph; every count includes the root UCAN. */
export interface ProofGraphBudget {
  /** Most distinct UCAN blocks reachable from the root (present in the store), root included. */
  blocks: number
  /** Most proof links, summed over the `prf` lists of those distinct blocks. */
  links: number
  /**
   * Most root-to-block paths: how many blocks a walk that follows every link without a visited
   * set touches (what ucanto's export and validator do). A tree has as many paths as blocks.
   */
  paths: number
  /** Longest chain of proof links from the root (Space→Agent→Service, seen from Service, is 2). */
  depth: number
}

/** Most distinct UCANs in an invocation's own proof graph, root included, by default. */
export const MAX_PROOF_GRAPH_BLOCKS = 64
/** Most proof links in an invocation's proof graph, by default. */
export const MAX_PROOF_GRAPH_LINKS = 256
/**
 * Most root-to-block paths in an invocation's proof graph, by default. Every honest chain is a
 * tree or close to one (Space→Alice→Agent→Service with a did:mailto attestation has < 10), and a
 * per-path walk of 1024 paths costs well under a millisecond.
 */
export const MAX_PROOF_GRAPH_PATHS = 1024
/** Longest proof chain in an invocation's proof graph, by default. */
export const MAX_PROOF_GRAPH_DEPTH = 16

/** The default budget of an invocation's own proof graph (per invocation). */
export const DEFAULT_PROOF_GRAPH_BUDGET: Readonly<ProofGraphBudget> = Object.freeze({
  blocks: MAX_PROOF_GRAPH_BLOCKS,
  links: MAX_PROOF_GRAPH_LINKS,
  paths: MAX_PROOF_GRAPH_PATHS,
  depth: MAX_PROOF_GRAPH_DEPTH,
})

/** What {@link measureProofGraph} found: each count within the budget. */
export interface ProofGraphSize {
  blocks: number
  links: number
  paths: number
  depth: number
}

/**
 * Measures the graph reachable from `root`, where `proofsOf(id)` gives the `prf` link ids of a
 * block, or `undefined` if the block is absent (an absent proof is a link but not a block: nobody
 * can walk into it). Each block is visited once.
 * @returns the sizes; `DuplicateProof` if one `prf` list names a link twice; `ProofCycle` if a block
 *   reaches itself; `ProofGraphTooLarge` naming the first bound exceeded. Stops at the first.
 */
export function measureProofGraph(
  root: string,
  proofsOf: (id: string) => readonly string[] | undefined,
  budget: Readonly<ProofGraphBudget> = DEFAULT_PROOF_GRAPH_BUDGET,
): API.Result<ProofGraphSize, ProofGraphFailure> {
  // Per distinct block: paths below it, itself included (saturated at budget.paths + 1), and the
  // longest chain below it.
  const done = new Map<string, { paths: number; height: number }>()
  const active = new Set<string>()
  let links = 0
  const cap = budget.paths + 1
  const tooLarge = (what: string, limit: number) => {
    throw new ProofGraphTooLarge(`proof graph has more than ${limit} ${what}`)
  }

  const visit = (id: string, depth: number): { paths: number; height: number } | undefined => {
    const known = done.get(id)
    if (known !== undefined) return known
    if (active.has(id)) throw new ProofCycle('proof links form a cycle')
    const proofs = proofsOf(id)
    if (proofs === undefined) return undefined
    if (depth > budget.depth) throw new ProofGraphTooLarge(`proof chain deeper than ${budget.depth}`)
    if (done.size + active.size + 1 > budget.blocks) tooLarge('UCANs', budget.blocks)
    links += proofs.length
    if (links > budget.links) tooLarge('proof links', budget.links)
    const seen = new Set<string>()
    for (const p of proofs) {
      if (seen.has(p)) throw new DuplicateProof('a UCAN lists the same proof more than once')
      seen.add(p)
    }
    active.add(id)
    let paths = 1
    let height = 0
    for (const p of proofs) {
      const below = visit(p, depth + 1)
      if (below === undefined) continue
      paths = Math.min(cap, paths + below.paths)
      height = Math.max(height, below.height + 1)
    }
    active.delete(id)
    if (paths > budget.paths) tooLarge('paths (a proof is reachable along too many routes)', budget.paths)
    const size = { paths, height }
    done.set(id, size)
    return size
  }

  try {
    const top = visit(root, 0)
    return { ok: { blocks: done.size, links, paths: top?.paths ?? 0, depth: top?.height ?? 0 } }
  } catch (cause) {
    if (cause instanceof DuplicateProof || cause instanceof ProofCycle || cause instanceof ProofGraphTooLarge) return { error: cause }
    throw cause
  }
}

/**
 * {@link measureProofGraph} of a ucanto UCAN (an invocation or a delegation) over the blocks it
 * carries, by CID string as ucanto's block stores key them. A block that does not decode as a UCAN
 * counts as a block without proofs (whatever later reads it refuses it). Each block is decoded as
 * ucanto decodes it (dag-ucan `UCAN.decode`), once: ucanto keeps the decode for its own views.
 */
export function checkProofGraph(
  ucan: { root: API.Block; blocks: Map<string, API.Block> },
  budget: Readonly<ProofGraphBudget> = DEFAULT_PROOF_GRAPH_BUDGET,
): API.Result<ProofGraphSize, ProofGraphFailure> {
  const rootId = ucan.root.cid.toString()
  return measureProofGraph(
    rootId,
    (id) => {
      const block = id === rootId ? ucan.root : ucan.blocks.get(id)
      if (block === undefined) return undefined
      try {
        // Decoded through ucanto's own view (`Delegation.create(…).data`: dag-ucan's `UCAN.decode`,
        // remembered by ucanto per block bytes), so the views ucanto builds of these same blocks
        // afterwards (the invocation, its proofs, a delegation's chain) reuse this decode.
        return Delegation.create({ root: block as API.UCANBlock, blocks: NO_BLOCKS }).data.proofs.map(String)
      } catch {
        return []
      }
    },
    budget,
  )
}
