/** proof-graph.ts: distinct-block walk, path counting by DP, duplicates, cycles, budgets at and one past the bound. */
import { describe, expect, test } from 'vitest'
import { UCAN } from '@ucanto/core'
import type { API } from '@ucanto/core'
import {
  DEFAULT_PROOF_GRAPH_BUDGET,
  type ProofGraphBudget,
  checkProofGraph,
  delegateAgentToService,
  delegateSpaceToAgent,
  measureProofGraph,
} from '../../src/ucan/index.js'
import { sha256 } from 'multiformats/hashes/sha2'
import * as Link from 'multiformats/link'
import { now, principals } from './helpers.js'

/** A graph as adjacency lists; ids not in it are absent blocks. Counts every proofsOf call. */
function graph(edges: Record<string, string[]>) {
  let calls = 0
  const proofsOf = (id: string) => {
    calls++
    return edges[id]
  }
  return { proofsOf, calls: () => calls }
}

const big: ProofGraphBudget = { blocks: 1000, links: 1000, paths: Number.MAX_SAFE_INTEGER - 1, depth: 1000 }

/** A ladder of `depth` rungs of `width` nodes, each listing every node of the next rung; root lists rung 0. */
function ladder(depth: number, width: number): Record<string, string[]> {
  const g: Record<string, string[]> = {}
  const rung = (i: number) => Array.from({ length: width }, (_, j) => `n${i}.${j}`)
  g.root = rung(0)
  for (let i = 0; i < depth; i++) for (const n of rung(i)) g[n] = i + 1 < depth ? rung(i + 1) : []
  return g
}

describe('measureProofGraph', () => {
  test('a chain: blocks = paths = n, depth n-1; an absent proof is a link, not a block', () => {
    const g = graph({ a: ['b'], b: ['c'], c: ['gone'] })
    expect(measureProofGraph('a', g.proofsOf, big).ok).toEqual({ blocks: 3, links: 3, paths: 3, depth: 2 })
  })

  test('a diamond ladder is counted, not enumerated: 2^40 paths in 81 visits', () => {
    const g = graph(ladder(40, 2))
    const r = measureProofGraph('root', g.proofsOf, big)
    // paths(root) = 1 + Σ over rungs of 2^(i+1) = 2^41 - 1
    expect(r.ok).toEqual({ blocks: 81, links: 2 + 39 * 4, paths: 2 ** 41 - 1, depth: 40 })
    expect(g.calls()).toBe(81)
  })

  test('the default budget refuses a 12-rung ladder (8191 paths, 25 blocks) by paths, looking at each block once', () => {
    const g = graph(ladder(12, 2))
    const r = measureProofGraph('root', g.proofsOf)
    expect(r.error?.name).toBe('ProofGraphTooLarge')
    expect(r.error?.message).toContain('paths')
    expect(g.calls()).toBeLessThanOrEqual(25)
    expect(DEFAULT_PROOF_GRAPH_BUDGET.paths).toBeLessThan(8191)
  })

  test('a prf list naming the same proof twice → DuplicateProof (even when the graph is tiny)', () => {
    expect(measureProofGraph('a', graph({ a: ['b', 'b'], b: [] }).proofsOf).error?.name).toBe('DuplicateProof')
    expect(measureProofGraph('a', graph({ a: ['b'], b: ['c', 'gone', 'c'], c: [] }).proofsOf).error?.name).toBe('DuplicateProof')
  })

  test('the same proof under two different parents is fine (a diamond, not a duplicate)', () => {
    expect(measureProofGraph('a', graph({ a: ['b', 'c'], b: ['d'], c: ['d'], d: [] }).proofsOf).ok).toEqual({ blocks: 4, links: 4, paths: 5, depth: 2 })
  })

  test('cycles, including a self-loop → ProofCycle', () => {
    expect(measureProofGraph('a', graph({ a: ['a'] }).proofsOf).error?.name).toBe('ProofCycle')
    expect(measureProofGraph('a', graph({ a: ['b'], b: ['c'], c: ['a'] }).proofsOf).error?.name).toBe('ProofCycle')
  })

  // Exactly at each bound passes; one past it is refused, naming the bound.
  const chain = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`u${i}`, i + 1 < n ? [`u${i + 1}`] : []]))
  test('blocks: at the bound and one over', () => {
    const budget = { ...big, blocks: 5 }
    expect(measureProofGraph('u0', graph(chain(5)).proofsOf, budget).ok?.blocks).toBe(5)
    const r = measureProofGraph('u0', graph(chain(6)).proofsOf, budget)
    expect(r.error?.name).toBe('ProofGraphTooLarge')
    expect(r.error?.message).toContain('UCANs')
  })

  test('links: at the bound and one over', () => {
    const star = (n: number) => ({ root: Array.from({ length: n }, (_, i) => `leaf${i}`) })
    const budget = { ...big, links: 7 }
    expect(measureProofGraph('root', graph(star(7)).proofsOf, budget).ok?.links).toBe(7)
    const r = measureProofGraph('root', graph(star(8)).proofsOf, budget)
    expect(r.error?.name).toBe('ProofGraphTooLarge')
    expect(r.error?.message).toContain('links')
  })

  test('paths: at the bound and one over', () => {
    // ladder(3, 2): paths = 1 + 2 + 4 + 8 = 15
    expect(measureProofGraph('root', graph(ladder(3, 2)).proofsOf, { ...big, paths: 15 }).ok?.paths).toBe(15)
    const r = measureProofGraph('root', graph(ladder(3, 2)).proofsOf, { ...big, paths: 14 })
    expect(r.error?.name).toBe('ProofGraphTooLarge')
    expect(r.error?.message).toContain('paths')
  })

  test('blocks: a finished sibling is counted once, not also as active (a star at the bound)', () => {
    const star = { root: ['l0', 'l1', 'l2', 'l3'], l0: [], l1: [], l2: [], l3: [] }
    expect(measureProofGraph('root', graph(star).proofsOf, { ...big, blocks: 5 }).ok).toEqual({ blocks: 5, links: 4, paths: 5, depth: 1 })
    expect(measureProofGraph('root', graph(star).proofsOf, { ...big, blocks: 4 }).error?.name).toBe('ProofGraphTooLarge')
  })

  test('an absent root is an empty graph', () => {
    expect(measureProofGraph('gone', graph({}).proofsOf).ok).toEqual({ blocks: 0, links: 0, paths: 0, depth: 0 })
  })

  test('depth: at the bound and one over', () => {
    expect(measureProofGraph('u0', graph(chain(4)).proofsOf, { ...big, depth: 3 }).ok?.depth).toBe(3)
    const r = measureProofGraph('u0', graph(chain(5)).proofsOf, { ...big, depth: 3 })
    expect(r.error?.name).toBe('ProofGraphTooLarge')
    expect(r.error?.message).toContain('deeper')
  })

  test('an error thrown by proofsOf is not a proof-graph failure: it propagates', () => {
    // Guards the rethrow in measureProofGraph's catch: only DuplicateProof, ProofCycle and
    // ProofGraphTooLarge are answers; a bug in the caller's reader is never reported as one.
    const bug = new TypeError('reader bug')
    expect(() => measureProofGraph('a', () => { throw bug })).toThrow(bug)
  })
})

describe('checkProofGraph over real UCAN blocks', () => {
  test('honest Space→Alice→Agent→Service is well inside the default budget', async () => {
    const P = await principals()
    const s2a = await delegateSpaceToAgent({ space: P.space, agent: P.alice, expiration: now() + 600 })
    const a2a = await delegateAgentToService({ agent: P.alice, service: P.agent, proofs: [s2a], space: P.space.did(), expiration: now() + 600 })
    const a2s = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [a2a], expiration: now() + 600 })
    expect(checkProofGraph(a2s).ok).toEqual({ blocks: 3, links: 2, paths: 3, depth: 2 })
  })

  test('a linked block that is present but not a UCAN counts as a block without proofs', async () => {
    const P = await principals()
    const raw = { cid: Link.create(0x55, await sha256.digest(new Uint8Array([1, 2, 3]))), bytes: new Uint8Array([1, 2, 3]) } as unknown as API.Block
    const data = await UCAN.issue({ issuer: P.mallory, audience: P.mallory, capabilities: [], proofs: [raw.cid] as never, expiration: now() + 60 })
    const root = (await UCAN.write(data)) as unknown as API.Block
    expect(checkProofGraph({ root, blocks: new Map([[raw.cid.toString(), raw]]) }).ok).toEqual({ blocks: 2, links: 1, paths: 2, depth: 1 })
    // Absent, it is a link only.
    expect(checkProofGraph({ root, blocks: new Map() }).ok).toEqual({ blocks: 1, links: 1, paths: 1, depth: 0 })
  })

  test('a UCAN listing the next proof twice, 30 deep, is refused without walking 2^30 paths', async () => {
    const P = await principals()
    const blocks = new Map<string, API.Block>()
    let next: API.Link | undefined
    let root: API.Block | undefined
    for (let i = 0; i < 30; i++) {
      const data = await UCAN.issue({ issuer: P.mallory, audience: P.mallory, capabilities: [], proofs: (next ? [next, next] : []) as never, expiration: now() + 60 })
      root = (await UCAN.write(data)) as unknown as API.Block
      blocks.set(root.cid.toString(), root)
      next = root.cid
    }
    expect(checkProofGraph({ root: root!, blocks }).error?.name).toBe('DuplicateProof')
  })
})
