/**
 * Lean receipts (issue 11 item 4; src/ucan/run-invocation.ts and transport.ts): every receipt names
 * the invocation it answers by link, so the response CAR carries the receipts and nothing of the
 * client's own invocation DAG, while each signed receipt stays byte for byte what ucanto's
 * `Server.run` signs, and ucanto's own client still finds its receipts.
 */
import { CarReader } from '@ipld/car'
import { beforeAll, describe, expect, test } from 'vitest'
import { Receipt, delegate, invoke } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { connect } from '@ucanto/client'
import * as Server from '@ucanto/server'
import * as CAR from '@ucanto/transport/car'
import { isLink } from 'multiformats/link'
import { appendInvocation, createUcanService, readInvocation } from '../../src/ucan/index.js'
import { runInvocation } from '../../src/ucan/run-invocation.js'
import { type Principals, RecordingLog, encodeRequest, honestChain, outOf } from './helpers.js'

let P: Principals
let agentToService: API.Delegation

beforeAll(async () => {
  ;({ P, agentToService } = await honestChain())
})

const append = async (entry: Uint8Array) =>
  (await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry, agentToService })).delegate()

/** Every CID of `inv`'s DAG: the invocation, its proofs, and nothing else needed to recognise them. */
const dagOf = (inv: API.Invocation): Set<string> => new Set([...inv.iterateIPLDBlocks()].map((b) => b.cid.toString()))

describe('the response of a request', () => {
  test('carries the receipts and no block of the invocations, whatever each receipt says', async () => {
    const log = new RecordingLog()
    const server = createUcanService({ signer: P.service, log, refusalDelayMs: 0 })
    const ok = [await append(new Uint8Array([1])), await append(new Uint8Array([2]))]
    const read = await readInvocation({ issuer: P.agent, service: P.service, space: P.space.did() }).delegate()
    // Refused by the transport itself: an ability not implemented, two capabilities.
    const unknown = await invoke({ issuer: P.agent, audience: P.service, capability: { can: 'tlog/nothing', with: P.space.did(), nb: {} } }).delegate()
    const two = (await delegate({
      issuer: P.agent,
      audience: P.service,
      capabilities: [
        { can: 'tlog/read', with: P.space.did() },
        { can: 'tlog/read', with: P.spaceB.did() },
      ] as unknown as API.Capabilities,
    })) as unknown as API.Invocation
    const invocations = [...ok, read, unknown, two]
    const res = (await server.request((await encodeRequest(invocations)) as never)) as { status?: number; body: Uint8Array; headers: Record<string, string> }
    expect(res.status ?? 200).toBe(200)

    const sent = new Set(invocations.flatMap((inv) => [...dagOf(inv)]))
    const car = await CarReader.fromBytes(res.body)
    const blocks: string[] = []
    for await (const block of car.blocks()) blocks.push(block.cid.toString())
    expect(blocks.filter((cid) => sent.has(cid))).toEqual([])

    const message = (await CAR.response.decode({ headers: res.headers, body: res.body } as never)) as API.AgentMessage
    const receipts = [...message.receipts.values()] as API.Receipt[]
    expect(receipts.length).toBe(invocations.length)
    for (const inv of invocations) {
      const receipt = message.get(inv.link()) as API.Receipt
      expect(isLink(receipt.ran)).toBe(true)
      expect(receipt.ran.link().toString()).toBe(inv.cid.toString())
      // The service's signature over the receipt verifies.
      expect((await receipt.verifySignature(P.service.verifier)).ok).toBeDefined()
    }
    expect(outOf(message.get(ok[0]!.link()) as API.Receipt).ok).toBeDefined()
    expect(outOf(message.get(ok[1]!.link()) as API.Receipt).ok).toBeDefined()
    // The read runs beside the appends (its page may be empty, or the log not created yet): answered either way.
    expect(Object.keys(outOf(message.get(read.link()) as API.Receipt))).toHaveLength(1)
    expect(outOf(message.get(unknown.link()) as API.Receipt).error?.name).toBe('InvalidCapability')
    expect(outOf(message.get(two.link()) as API.Receipt).error?.name).toBe('InvalidCapability')
  })

  test("ucanto's client (connection.execute) finds each receipt by its invocation's link", async () => {
    const log = new RecordingLog()
    const server = createUcanService({ signer: P.service, log, refusalDelayMs: 0 })
    const connection = connect({ id: P.service, codec: CAR.outbound, channel: server as never })
    const a = await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([7]), agentToService })
    const b = await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([8]), agentToService })
    const [ra, rb] = await connection.execute(a as never, b as never)
    expect((ra?.out as { ok?: { index: number } }).ok?.index).toBe(0)
    expect((rb?.out as { ok?: { index: number } }).ok?.index).toBe(1)
    expect(log.appends.map((x) => [...x.entry])).toEqual([[7], [8]])
  })
})

describe('runInvocation against ucanto Server.run', () => {
  /** The effects `test/effect` answers with (set by the test that calls it). */
  let effects: API.Effects = { fork: [] }

  /** A ucanto server whose `test/echo` answers from the invocation, `test/effect` with `effects`, and `test/boom` throws. */
  function fixture(caught: unknown[]) {
    return Server.create({
      id: P.service,
      codec: CAR.inbound,
      service: {
        test: {
          echo: async (inv: API.Invocation) => ({ ok: { with: inv.capabilities[0]!.with, n: 42 } }),
          // A joined effect (ucanto's `ok(…).fork(…).join(…)`): the receipt carries `out` and `fx`.
          effect: async () => ({ do: { out: { ok: { done: true } }, fx: effects } }),
          boom: async () => {
            throw new Error('kaput')
          },
        },
      },
      validateAuthorization: () => ({ ok: {} }),
      catch: (error: unknown) => void caught.push(error),
    }) as unknown as API.ServerView<Record<string, unknown>>
  }

  test('the same signed receipt (same root block, same CID) without the invocation blocks', async () => {
    const server = fixture([])
    const inv = await invoke({ issuer: P.agent, audience: P.service, capability: { can: 'test/echo', with: P.space.did() }, proofs: [agentToService] }).delegate()
    const stock = (await Server.run(inv as never, server as never)) as API.Receipt
    const lean = await runInvocation(inv, server)
    expect(lean.root.cid.toString()).toBe(stock.root.cid.toString())
    expect([...lean.root.bytes]).toEqual([...stock.root.bytes])
    expect(lean.out).toEqual({ ok: { with: P.space.did(), n: 42 } })
    const leanBlocks = [...lean.iterateIPLDBlocks()].map((b) => b.cid.toString())
    const stockBlocks = new Set([...stock.iterateIPLDBlocks()].map((b) => b.cid.toString()))
    expect(leanBlocks).toEqual([lean.root.cid.toString()])
    for (const cid of dagOf(inv)) expect(stockBlocks.has(cid)).toBe(true)
    expect((await lean.verifySignature(P.service.verifier)).ok).toBeDefined()
  })

  test("a handler's joined effect (fx: fork and join) is signed into the receipt as ucanto's Server.run signs it", async () => {
    const server = fixture([])
    const task = (n: number) => invoke({ issuer: P.service, audience: P.service, capability: { can: 'test/echo', with: P.space.did(), nb: { n } } }).delegate()
    const [fork, join] = [await task(1), await task(2)]
    for (const fx of [{ fork: [fork] }, { fork: [fork], join }, { fork: [] }] as API.Effects[]) {
      effects = fx
      const inv = await invoke({ issuer: P.agent, audience: P.service, capability: { can: 'test/effect', with: P.space.did() } }).delegate()
      const stock = (await Server.run(inv as never, server as never)) as API.Receipt
      const lean = await runInvocation(inv, server)
      expect(lean.root.cid.toString()).toBe(stock.root.cid.toString())
      expect(lean.out).toEqual({ ok: { done: true } })
      expect(lean.fx.fork.map((f) => f.link().toString())).toEqual(fx.fork.map((f) => f.link().toString()))
      expect(lean.fx.join?.link().toString()).toBe(fx.join?.link().toString())
    }
  })

  test("a handler that throws gets ucanto's HandlerExecutionError, reported to the server's catch first", async () => {
    const caught: unknown[] = []
    const server = fixture(caught)
    const inv = await invoke({ issuer: P.agent, audience: P.service, capability: { can: 'test/boom', with: P.space.did() } }).delegate()
    const stock = (await Server.run(inv as never, server as never)) as API.Receipt
    const lean = await runInvocation(inv, server)
    const name = (r: API.Receipt) => (r.out.error as { name?: string } | undefined)?.name
    expect(name(lean)).toBe('HandlerExecutionError')
    expect(name(lean)).toBe(name(stock))
    expect((lean.out.error as { message: string }).message).toBe((stock.out.error as { message: string }).message)
    expect(caught.map((e) => (e as Error).name)).toEqual(['HandlerExecutionError', 'HandlerExecutionError'])
    expect(lean.ran.link().toString()).toBe(inv.cid.toString())
  })

  test('a receipt issued with the invocation and one issued with its link are the same signed receipt', async () => {
    const inv = await invoke({ issuer: P.agent, audience: P.service, capability: { can: 'test/echo', with: P.space.did() } }).delegate()
    const full = await Receipt.issue({ issuer: P.service, ran: inv, result: { ok: {} } })
    const link = await Receipt.issue({ issuer: P.service, ran: inv.link(), result: { ok: {} } })
    expect(link.root.cid.toString()).toBe(full.root.cid.toString())
  })
})
