/**
 * Issue 8, hole 1: proof DAGs whose per-path walk is exponential. A UCAN listing its next proof
 * twice (or a "diamond" ladder, A→[B,C], B→[D], C→[D], …) has 2^depth root-to-leaf paths over a
 * handful of distinct blocks; ucanto's DAG export (every receipt's `ran`) and our grant probe
 * walk it once per path. Each bomb below is a few KB and must be refused with a named error at
 * once, whether its signature is valid or forged, with /healthz answering and nothing appended.
 *
 * The server runs as its own process (`ucanlog serve`), so a bomb that blocks its event loop
 * makes the test's fetch time out instead of freezing the test runner with it.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CAR, Delegation, Message, UCAN, invoke } from '@ucanto/core'
import type * as API from '@ucanto/interface'
import * as CARTransport from '@ucanto/transport/car'
import { base64 } from 'multiformats/bases/base64'
import { identity } from 'multiformats/hashes/identity'
import * as Link from 'multiformats/link'
import { encodeBase64 } from '../../src/tlog/index.js'
import { delegateAgentToService, delegateSpaceToAgent, formatDelegation, generateKey, type Key } from '../../src/ucan/index.js'
import { REPO, impostor, spawnServe } from './helpers.js'

/** Generous: a refused bomb is answered in milliseconds; an unbounded walk takes minutes. */
const ANSWER_TIMEOUT_MS = 10_000

let url: string
let serviceDid: API.DID
let child: ChildProcess
let dataDir: string
let space: Key, agent: Key, mallory: Key
let honestDelegation: string
let s2a: API.Delegation

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-bomb-'))
  const r = await spawnServe(['--data', dataDir, '--port', '0', '--log-level', 'silent', '--batch-max-age', '20', '--witness-policy', join(REPO, 'witness_policy.txt')])
  url = r.url
  child = r.child
  serviceDid = r.did as API.DID
  space = await generateKey()
  agent = await generateKey()
  mallory = await generateKey()
  s2a = await delegateSpaceToAgent({ space, agent })
  honestDelegation = await formatDelegation(await delegateAgentToService({ agent, service: serviceDid, proofs: [s2a] }))
}, 30_000)

afterAll(async () => {
  child?.kill('SIGKILL')
  if (dataDir) await rm(dataDir, { recursive: true, force: true })
})

const exp = () => Math.floor(Date.now() / 1000) + 300
type Block = { cid: API.Link; bytes: Uint8Array }

/** A raw UCAN block (no ucanto Delegation, whose export would itself walk every path). */
async function ucanBlock(issuer: API.Signer, opts: { proofs: Block[]; capabilities?: API.Capability[]; audience?: API.Principal }): Promise<Block> {
  const data = await UCAN.issue({
    issuer,
    audience: opts.audience ?? issuer,
    capabilities: (opts.capabilities ?? []) as never,
    proofs: opts.proofs.map((p) => p.cid) as never,
    expiration: exp(),
    nonce: Math.random().toString(36),
  })
  const { cid, bytes } = await UCAN.write(data)
  return { cid: cid as API.Link, bytes }
}

/** A chain of `depth` UCANs, each listing the next one `fanout` times; returns [top, …all blocks]. */
async function doubled(depth: number, fanout: number, capabilities?: API.Capability[]): Promise<Block[]> {
  const blocks: Block[] = []
  let next: Block | undefined
  for (let i = 0; i < depth; i++) {
    next = await ucanBlock(mallory, { proofs: next ? Array(fanout).fill(next) : [], capabilities })
    blocks.push(next)
  }
  return blocks.reverse()
}

/**
 * A ladder of `depth` rungs of `width` UCANs, each listing every UCAN of the next rung once (no
 * duplicate link): width^depth paths. Returns the blocks, top rung first.
 */
async function diamonds(depth: number, width: number, capabilities?: API.Capability[]): Promise<Block[]> {
  const rungs: Block[][] = []
  let rung: Block[] = []
  for (let i = 0; i < depth; i++) {
    const next: Block[] = []
    for (let j = 0; j < width; j++) next.push(await ucanBlock(mallory, { proofs: rung, capabilities }))
    rungs.unshift((rung = next))
  }
  return rungs.flat()
}

/** A tlog/append body whose invocation lists `proofs` (roots) with `extra` blocks carried along, built without walking them. */
async function appendBody(issuer: API.Signer, proofs: Block[], extra: Block[], delegation = honestDelegation): Promise<Uint8Array> {
  const inv = await invoke({
    issuer,
    audience: { did: () => serviceDid },
    capability: { can: 'tlog/append', with: space.did(), nb: { data: encodeBase64(new TextEncoder().encode('bomb')), delegation } },
    proofs: proofs.map((p) => p.cid) as never,
    expiration: exp(),
    nonce: Math.random().toString(36),
  }).delegate()
  // The invocation alone (its proofs are absent from its own store, so building the message walks nothing).
  const bare = Delegation.create({ root: inv.root, blocks: new Map() })
  const message = await Message.build({ invocations: [bare as unknown as API.Invocation] })
  const blocks = new Map<string, Block>()
  for (const b of message.iterateIPLDBlocks()) blocks.set(b.cid.toString(), b as Block)
  for (const b of extra) blocks.set(b.cid.toString(), b)
  return CAR.encode({ roots: [message.root], blocks: blocks as never }) as Uint8Array
}

/** The Storacha string form of a delegation archive whose root UCAN is `root`, assembled from raw blocks. */
async function archiveString(root: Block, blocks: Block[]): Promise<string> {
  const { cid: variantCid, bytes: variantBytes } = await (await import('@ucanto/core')).CBOR.write({ 'ucan@0.9.1': root.cid })
  const store = new Map<string, Block>()
  for (const b of [...blocks, root]) store.set(b.cid.toString(), b)
  const variant = { cid: variantCid as API.Link, bytes: variantBytes }
  store.set(variant.cid.toString(), variant)
  const archive = CAR.encode({ roots: [variant], blocks: store as never }) as Uint8Array
  return Link.create(0x0202, identity.digest(archive)).toString(base64)
}

/** POSTs a CAR body; returns each receipt's error name (or 'ok'). Times out rather than hang. */
async function post(body: Uint8Array): Promise<{ status: number; outcomes: string[]; text: string }> {
  const res = await fetch(`${url}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/vnd.ipld.car' },
    body,
    signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS),
  })
  const bytes = new Uint8Array(await res.arrayBuffer())
  if (res.status !== 200) return { status: res.status, outcomes: [], text: new TextDecoder().decode(bytes) }
  const message = (await CARTransport.response.decode({ headers: Object.fromEntries(res.headers), body: bytes } as never)) as API.AgentMessage
  const outcomes = [...message.receipts.values()].map((r) => {
    const out = r.out as { ok?: unknown; error?: { name: string; message: string } }
    if (out.error) {
      expect(Object.keys(out.error).sort()).toEqual(['message', 'name'])
      return out.error.name
    }
    return 'ok'
  })
  return { status: 200, outcomes, text: '' }
}

async function healthz(): Promise<number> {
  return (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) })).status
}

async function treeSize(): Promise<number> {
  const res = await fetch(`${url}/logs/${space.did()}/head`, { signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) })
  if (res.status === 404) return 0
  return ((await res.json()) as { treeSize: number }).treeSize
}

/** Sends `body` while asking /healthz; expects one receipt refused with `name` and the log unchanged. */
async function expectRefused(body: Uint8Array, name: string): Promise<void> {
  const before = await treeSize()
  const [answer, health] = await Promise.all([post(body), healthz()])
  expect(health).toBe(200)
  expect(answer.status).toBe(200)
  expect(answer.outcomes).toEqual([name])
  expect(await healthz()).toBe(200)
  expect(await treeSize()).toBe(before)
}

describe('proof graphs are walked by distinct block, and bombs are refused by name', () => {
  it('control: an honest append through the same helpers is accepted', async () => {
    const before = await treeSize()
    const { outcomes } = await post(await appendBody(agent, [], []))
    expect(outcomes).toEqual(['ok'])
    expect(await treeSize()).toBe(before + 1)
  })

  it('invocation proofs listing the next proof twice, depth 24, valid signature → DuplicateProof', async () => {
    const chain = await doubled(24, 2, [{ can: 'x/y', with: mallory.did() }])
    await expectRefused(await appendBody(agent, [chain[0]!], chain), 'DuplicateProof')
  }, 30_000)

  it('the same doubled DAG under a forged invocation signature → DuplicateProof', async () => {
    const chain = await doubled(24, 2, [{ can: 'x/y', with: mallory.did() }])
    await expectRefused(await appendBody(impostor(agent, mallory), [chain[0]!], chain), 'DuplicateProof')
  }, 30_000)

  it('invocation proofs forming a diamond ladder (no duplicate link), depth 24 → ProofGraphTooLarge', async () => {
    const ladder = await diamonds(24, 2, [{ can: 'x/y', with: mallory.did() }])
    await expectRefused(await appendBody(agent, ladder.slice(0, 2), ladder), 'ProofGraphTooLarge')
  }, 30_000)

  it('nb.delegation with zero-capability proofs fanning out 20× over 6 levels → DuplicateProof', async () => {
    const zeros = await doubled(6, 20)
    const s2aBlock = { cid: s2a.cid as API.Link, bytes: s2a.root.bytes }
    const top = await ucanBlock(agent, {
      audience: { did: () => serviceDid } as API.Principal,
      capabilities: ['space/blob/add', 'space/index/add', 'upload/add'].map((can) => ({ can, with: space.did() })) as API.Capability[],
      proofs: [s2aBlock, ...Array(20).fill(zeros[0])],
    })
    await expectRefused(await appendBody(agent, [], [], await archiveString(top, [s2aBlock, ...zeros])), 'DuplicateProof')
  }, 30_000)

  it('nb.delegation with a zero-capability 3-wide ladder (3^7 paths) beside an honest chain → ProofGraphTooLarge', async () => {
    const ladder = await diamonds(7, 3) // 21 UCANs, depth 7: within the UCAN and depth bounds
    const s2aBlock = { cid: s2a.cid as API.Link, bytes: s2a.root.bytes }
    const top = await ucanBlock(agent, {
      audience: { did: () => serviceDid } as API.Principal,
      capabilities: ['space/blob/add', 'space/index/add', 'upload/add'].map((can) => ({ can, with: space.did() })) as API.Capability[],
      proofs: [s2aBlock, ...ladder.slice(0, 3)],
    })
    await expectRefused(await appendBody(agent, [], [], await archiveString(top, [s2aBlock, ...ladder])), 'ProofGraphTooLarge')
  }, 30_000)

  it('afterwards the service still appends for its honest agent', async () => {
    const before = await treeSize()
    const { outcomes } = await post(await appendBody(agent, [], []))
    expect(outcomes).toEqual(['ok'])
    expect(await treeSize()).toBe(before + 1)
  })
})
