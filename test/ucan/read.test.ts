/** tlog/read through the ucanto server, and one end-to-end run of the client helpers over HTTP. */
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { invoke } from '@ucanto/core'
import type { API } from '@ucanto/core'
import {
  appendInvocation,
  connect,
  createUcanService,
  delegateSpaceToAgent,
  readInvocation,
} from '../../src/ucan/index.js'
import { encodeBase64 } from '../../src/tlog/encoding.js'
import { type Principals, RecordingLog, encodeRequest, now, outOf, principals, send, sendRaw } from './helpers.js'

let P: Principals
beforeAll(async () => {
  P = await principals()
})

function seeded(entries: Uint8Array[], options: { maxResponseBytes?: number } = {}) {
  const log = new RecordingLog()
  log.logs.set(P.space.did(), entries)
  const server = createUcanService({ signer: P.service, log, ...options })
  return { log, server }
}

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill)

/** Receipts' outs in the order of `invocations` (a decoded message orders receipts by CID). */
function inOrder(invocations: API.Delegation[], receipts: API.Receipt[]) {
  const byRan = new Map<string, API.Receipt>(receipts.map((r) => [String(r.ran.link()), r]))
  return invocations.map((inv) => outOf(byRan.get(String(inv.cid)) as API.Receipt))
}

describe('tlog/read', () => {
  test('anyone may read; entries are standard base64; default page from 0', async () => {
    const entries = [bytes(1, 1), bytes(2, 2), bytes(3, 3)]
    const { server } = seeded(entries)
    const out = await send(server, await readInvocation({ issuer: P.mallory, service: P.service, space: P.space.did() }).delegate())
    expect(out.ok).toEqual({ entries: entries.map(encodeBase64), total: 3 })
  })

  test('offset and limit page the log', async () => {
    const entries = Array.from({ length: 10 }, (_, i) => bytes(4, i))
    const { server } = seeded(entries)
    const out = await send(server, await readInvocation({ issuer: P.agent, service: P.service, space: P.space.did(), offset: 8, limit: 5 }).delegate())
    expect(out.ok).toEqual({ entries: entries.slice(8).map(encodeBase64), total: 10 })
  })

  test('a page stops at maxResponseBytes, and the engine is asked for no more than that', async () => {
    const entries = [bytes(300, 1), bytes(300, 2), bytes(300, 3)]
    const { server, log } = seeded(entries, { maxResponseBytes: 500 })
    const out = await send(server, await readInvocation({ issuer: P.agent, service: P.service, space: P.space.did() }).delegate())
    expect(out.ok).toEqual({ entries: [encodeBase64(entries[0] as Uint8Array)], total: 3 })
    expect(log.readBudgets).toEqual([375]) // 3/4 of 500 base64 characters, in raw bytes
  })

  test('reads of one request share its budget: later ones get fewer entries, then ResponseTooLarge', async () => {
    const entries = [bytes(300, 1), bytes(300, 2), bytes(300, 3)] // 400 base64 characters each
    const { server } = seeded(entries, { maxResponseBytes: 1000 })
    const reads = await Promise.all(
      [0, 0, 2].map((offset, i) => invoke({ issuer: P.agent, audience: P.service, capability: { can: 'tlog/read', with: P.space.did(), nb: { offset, limit: 2 } }, expiration: now() + 60, nonce: String(i) }).delegate()),
    )
    const outs = inOrder(reads, await sendRaw(server, await encodeRequest(reads as API.Invocation[])))
    expect(outs[0]?.ok).toEqual({ entries: entries.slice(0, 2).map(encodeBase64), total: 3 })
    expect(outs[1]?.error?.name).toBe('ResponseTooLarge') // 200 characters left: not one entry
    expect(outs[2]?.error?.name).toBe('ResponseTooLarge')
    // A new request has a new budget.
    expect((await send(server, reads[2] as API.Invocation)).ok).toEqual({ entries: [encodeBase64(entries[2] as Uint8Array)], total: 3 })
  })

  test('a read past the end is an empty page even with the budget spent', async () => {
    const { server } = seeded([bytes(300, 1)], { maxResponseBytes: 500 })
    const reads = await Promise.all([0, 1].map((offset) => readInvocation({ issuer: P.agent, service: P.service, space: P.space.did(), offset }).delegate()))
    const outs = inOrder(reads, await sendRaw(server, await encodeRequest(reads as API.Invocation[])))
    expect(outs.map((o) => o.ok)).toEqual([{ entries: [encodeBase64(bytes(300, 1))], total: 1 }, { entries: [], total: 1 }])
  })

  test('a read without exp, or with exp past the lifetime bound → InvalidExpiry', async () => {
    const { server } = seeded([bytes(1, 1)])
    const noExp = await invoke({ issuer: P.agent, audience: P.service, capability: { can: 'tlog/read', with: P.space.did(), nb: {} }, expiration: Infinity }).delegate()
    expect((await send(server, noExp)).error?.name).toBe('InvalidExpiry')
    const far = await readInvocation({ issuer: P.agent, service: P.service, space: P.space.did(), lifetime: 7200 }).delegate()
    expect((await send(server, far)).error?.name).toBe('InvalidExpiry')
  })

  /** A one-entry log whose reads wait until `release()`: requests stay in flight, holding their budgets. */
  /**
   * A log whose reads wait at a gate until `release`; `reading(n)` resolves once `n` reads are
   * waiting there (so a test knows those requests hold their budget, without sleeping).
   */
  const gatedReads = (): { slow: RecordingLog; release: () => void; reading: (n: number) => Promise<void> } => {
    const log = new RecordingLog()
    log.logs.set(P.space.did(), [bytes(1, 1)])
    let release: () => void = () => {}
    const gate = new Promise<void>((r) => (release = r))
    let waiting = 0
    const watchers: { n: number; ok: () => void }[] = []
    const slow = Object.assign(Object.create(log), {
      async read(...args: Parameters<RecordingLog['read']>) {
        waiting++
        for (const w of watchers) if (waiting >= w.n) w.ok()
        await gate
        return log.read(...args)
      },
    }) as RecordingLog
    const reading = (n: number) => new Promise<void>((ok) => (waiting >= n ? ok() : watchers.push({ n, ok })))
    return { slow, release, reading }
  }

  test('requests that read reserve their budget from the in-flight pool; past it → 503 ReadCapacityExhausted', async () => {
    const { slow, release, reading } = gatedReads()
    const server = createUcanService({ signer: P.service, log: slow, maxResponseBytes: 1000, maxResponseBytesInFlight: 1000 })
    const first = server.request(await encodeRequest([(await readInvocation({ issuer: P.agent, service: P.service, space: P.space.did() }).delegate()) as API.Invocation]))
    await reading(1) // the first request is reading (its budget reserved) and held there
    // Refused at once, or (the bug) it reaches the gated log too.
    const second = await Promise.race([
      server.request(await encodeRequest([(await readInvocation({ issuer: P.mallory, service: P.service, space: P.space.did() }).delegate()) as API.Invocation])),
      reading(2).then(() => ({ status: 'a second read reached the log', body: new Uint8Array() })),
    ])
    expect(second.status).toBe(503)
    expect(new TextDecoder().decode(second.body)).toMatch(/^ReadCapacityExhausted/)
    release()
    expect((await first).status ?? 200).toBe(200)
    // Released: the next reading request is served.
    expect((await send(server, await readInvocation({ issuer: P.mallory, service: P.service, space: P.space.did() }).delegate())).ok).toBeDefined()
  })

  test('one client address holds at most a quarter of the in-flight pool; another address still reads', async () => {
    const { slow, release, reading } = gatedReads()
    // A pool of 8 budgets: each address may hold 2 at once.
    const server = createUcanService({ signer: P.service, log: slow, maxResponseBytes: 1000, maxResponseBytesInFlight: 8000 })
    const read = async (issuer: API.Signer, client: string) =>
      server.request({ ...(await encodeRequest([(await readInvocation({ issuer, service: P.service, space: P.space.did() }).delegate()) as API.Invocation])), client } as never)
    const held = [read(P.mallory, '192.0.2.7'), read(P.mallory, '192.0.2.7')]
    await reading(2) // both hold their budget, waiting at the gate
    // Refused at once, or (the bug) it reaches the gated log too.
    const third = await Promise.race([read(P.mallory, '192.0.2.7'), reading(3).then(() => ({ status: 'a third read from 192.0.2.7 reached the log', body: new Uint8Array() }))])
    expect(third.status).toBe(503)
    expect(new TextDecoder().decode(third.body)).toMatch(/^ReadCapacityExhausted/)
    // Another address is served while the first holds its share.
    const other = read(P.agent, '198.51.100.1')
    release()
    expect((await other).status ?? 200).toBe(200)
    for (const r of await Promise.all(held)) expect(r.status ?? 200).toBe(200)
    // Released: the first address reads again.
    expect((await read(P.mallory, '192.0.2.7')).status ?? 200).toBe(200)
  })

  test('unknown log → UnknownLog', async () => {
    const { server } = seeded([])
    const out = await send(server, await readInvocation({ issuer: P.agent, service: P.service, space: P.spaceB.did() }).delegate())
    expect(out.error?.name).toBe('UnknownLog')
  })

  // guards: the reserved-space check in src/ucan/handlers/read.ts (the service's own DID and the
  // configured reserved spaces are not spaces: their logs, if the engine had any, are never read).
  test('the service\'s own DID, or a configured reserved space → ReservedSpace, and the log is never read', async () => {
    const log = new RecordingLog()
    log.logs.set(P.service.did(), [bytes(1, 1)])
    log.logs.set(P.spaceB.did(), [bytes(1, 2)])
    const server = createUcanService({ signer: P.service, log, reservedSpaces: [P.spaceB.did()] })
    for (const space of [P.service.did(), P.spaceB.did()]) {
      const out = await send(server, await readInvocation({ issuer: P.agent, service: P.service, space }).delegate())
      expect(out.error?.name, space).toBe('ReservedSpace')
    }
    expect(log.readBudgets).toEqual([])
  })

  for (const nb of [{ limit: 0 }, { limit: 1001 }, { offset: -1 }, { offset: 1.5 }, { limit: '5' }]) {
    test(`nb ${JSON.stringify(nb)} → InvalidCapability`, async () => {
      const { server } = seeded([bytes(1, 1)])
      const inv = await invoke({
        issuer: P.agent,
        audience: P.service,
        capability: { can: 'tlog/read', with: P.space.did(), nb: nb as unknown as Record<string, number> },
        expiration: now() + 60,
      }).delegate()
      expect((await send(server, inv)).error?.name).toBe('InvalidCapability')
    })
  }

  test('wrong audience, expired, forged signature are refused', async () => {
    const { server } = seeded([bytes(1, 1)])
    const base = { issuer: P.agent, service: P.service, space: P.space.did() }
    expect((await send(server, await readInvocation({ ...base, service: P.mallory }).delegate())).error?.name).toBe('InvalidAudience')
    expect((await send(server, await readInvocation({ ...base, lifetime: -5 }).delegate())).error?.name).toBe('Expired')
    const forged = { ...P.agent, did: () => P.agent.did(), sign: (p: Uint8Array) => P.mallory.sign(p), signatureAlgorithm: 'EdDSA', signatureCode: 0xd0ed }
    const out = await send(server, await readInvocation({ ...base, issuer: forged as unknown as API.Signer }).delegate())
    expect(out.error?.name).toBe('InvalidSignature')
  })
})

describe('client helpers over HTTP', () => {
  let httpServer: http.Server
  let url: string
  const log = new RecordingLog()

  beforeAll(async () => {
    const P = await principals()
    const ucan = createUcanService({ signer: P.service, log })
    httpServer = http.createServer(async (req, res) => {
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]))
      const out = await ucan.request({ headers, body: new Uint8Array(Buffer.concat(chunks)) })
      res.writeHead(out.status ?? 200, out.headers)
      res.end(out.body)
    })
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/rpc`
  })

  afterAll(async () => {
    await new Promise((resolve) => httpServer.close(resolve))
  })

  test('append twice and read back with connect()', async () => {
    const connection = connect(url, P.service.did())
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const a = await appendInvocation({ agent: P.agent, service: P.service.did(), space: P.space.did(), entry: bytes(5, 1), spaceToAgent })
    const b = await appendInvocation({ agent: P.agent, service: P.service.did(), space: P.space.did(), entry: bytes(5, 1), spaceToAgent })
    const ra = await a.execute(connection)
    const rb = await b.execute(connection)
    expect(ra.out.error).toBeUndefined()
    expect((ra.out.ok as { index: number }).index).toBe(0)
    expect((rb.out.ok as { index: number }).index).toBe(1)
    const read = await readInvocation({ issuer: P.mallory, service: P.service.did(), space: P.space.did() }).execute(connection)
    expect(read.out.ok).toEqual({ entries: [encodeBase64(bytes(5, 1)), encodeBase64(bytes(5, 1))], total: 2 })
  })
})
