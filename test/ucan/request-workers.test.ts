/**
 * Request workers (src/ucan/request-check.ts, request-pool.ts, request-sequencer.ts; issue 11 item
 * 2): a service with a request pool answers every request byte for byte as the same service
 * without one — honest appends, each refusal by its name (forged signature, wrong audience,
 * expired, bad data, an entry too large, a bad delegation, an issuer mismatch, a reserved space,
 * a revoked delegation), replays, and requests that are not only appends (which fall back to the
 * main thread). The pool refuses past its queue (`busy`), and the worker falls back on anything
 * it does not handle.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { API } from '@ucanto/core'
import { CAR, CBOR } from '@ucanto/core'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import {
  FALLBACK,
  TlogAppend,
  checkRequest,
  createMemoryRevocations,
  createPrincipalParser,
  createRequestPool,
  createUcanService,
  delegateAgentToService,
  delegateSpaceToAgent,
  formatDelegation,
  readInvocation,
  type RequestPool,
  UcanStore,
} from '../../src/ucan/index.js'
import { encodeBase64 } from '../../src/tlog/encoding.js'
import { createAdmission } from '../../src/server/rate-limit.js'
import type { Admission } from '../../src/ucan/admission.js'
import { type Principals, RecordingLog, encodeRequest, impostor, now, outOf, principals, sendRaw } from './helpers.js'

let P: Principals
let delegationString: string
let agentToService: API.Delegation
const pools: RequestPool[] = []

beforeAll(async () => {
  P = await principals()
  const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() + 86400 })
  agentToService = await delegateAgentToService({ agent: P.agent, service: P.service.did(), proofs: [spaceToAgent], expiration: now() + 86400 })
  delegationString = await formatDelegation(agentToService)
})
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()))
})

/** A signed tlog/append (a nonce each: distinct CIDs) with the given overrides. */
async function append(o: { issuer?: API.Signer; audience?: API.Principal; space?: string; data?: string; delegation?: string; expiration?: number } = {}): Promise<API.Invocation> {
  return await TlogAppend.invoke({
    issuer: o.issuer ?? P.agent,
    audience: o.audience ?? P.service,
    with: (o.space ?? P.space.did()) as API.DID<'key'>,
    nb: { data: o.data ?? encodeBase64(new TextEncoder().encode(`entry ${Math.random()}`)), delegation: o.delegation ?? delegationString },
    expiration: o.expiration ?? now() + 300,
    nonce: Math.random().toString(36),
  }).delegate()
}

/** A service over its own recording log and revocations, with `workers` request workers (0: none). */
function service(workers: number, o: { admission?: Admission; log?: RecordingLog; replay?: UcanStore['replay']; wrapPool?: (pool: RequestPool) => RequestPool } = {}) {
  const log = o.log ?? new RecordingLog()
  const revocations = createMemoryRevocations()
  const reserved = [P.spaceB.did()]
  const pool =
    workers > 0
      ? createRequestPool({
          workers,
          maxQueue: 64,
          settings: { signer: P.service.encode(), maxInvocationLifetime: 3600, reservedSpaces: reserved, maxInvocations: 64, maxVerifiedUcans: 1000, maxVerifiedUcanBytes: 1 << 20 },
        })
      : undefined
  if (pool) pools.push(pool)
  const requestPool = pool && (o.wrapPool?.(pool) ?? pool)
  const routes: string[] = []
  const server = createUcanService({
    signer: P.service,
    log,
    revocations,
    reservedSpaces: reserved,
    refusalDelayMs: 0,
    ...(o.admission && { admission: o.admission }),
    ...(o.replay && { replay: o.replay }),
    ...(requestPool && { requestPool, onRequestRoute: (by) => routes.push(by) }),
  })
  return { server, log, revocations, routes }
}

describe('a service with request workers answers as one without', () => {
  test('every outcome, byte for byte, and the same log', async () => {
    const plain = service(0)
    const offloaded = service(1)
    const toAlice = await delegateSpaceToAgent({ space: P.space, agent: P.alice, expiration: now() + 86400 })
    const other = await delegateAgentToService({ agent: P.alice, service: P.service.did(), proofs: [toAlice], expiration: now() + 86400 })
    const requests: API.Invocation[][] = [
      await Promise.all(Array.from({ length: 16 }, () => append())),
      [
        await append({ issuer: impostor(P.agent, P.alice) }), // forged signature
        await append({ audience: P.alice }), // not addressed to the service
        await append({ expiration: now() - 10 }), // expired
        await append({ data: 'not base64!' }), // bad data
        await append({ data: encodeBase64(new Uint8Array(70_000)) }), // too large
        await append({ delegation: 'mAYIEAAAA' }), // not a delegation
        await append({ delegation: await formatDelegation(other) }), // issued by someone else
        await append({ space: P.service.did() }), // the service itself
        await append({ space: P.spaceB.did() }), // reserved
        await append(),
      ],
    ]
    // The same requests again (replays), then a read (not only appends: the main thread's).
    requests.push(requests[0]!.slice(0, 4), [...requests[1]!])
    requests.push([await readInvocation({ issuer: P.agent, service: P.service.did(), space: P.space.did(), offset: 0, limit: 2 }).delegate()])
    for (const invocations of requests) {
      const body = await encodeRequest(invocations)
      const a = await plain.server.request(body as never)
      const b = await offloaded.server.request(body as never)
      expect(b.status).toBe(a.status)
      expect(Buffer.from(b.body).equals(Buffer.from(a.body))).toBe(true)
    }
    // Revoked: the agent's delegation is revoked in both services; a new append is refused alike.
    for (const s of [plain, offloaded]) s.revocations.add(agentToService.cid.toString(), P.agent.did())
    const late = await encodeRequest([await append(), await append()])
    const [a, b] = [await plain.server.request(late as never), await offloaded.server.request(late as never)]
    expect(Buffer.from(b.body).equals(Buffer.from(a.body))).toBe(true)
    expect(Buffer.from(a.body).toString('latin1')).toContain('Revoked')

    expect(offloaded.log.appends.map((x) => x.invocation)).toEqual(plain.log.appends.map((x) => x.invocation))
    expect(plain.log.appends.length).toBe(17)
    expect(offloaded.routes).toEqual(['worker', 'worker', 'worker', 'worker', 'fallback', 'worker'])
  })
})

describe("a worker encodes a request's receipts while the replay guard commits their outcomes", () => {
  /** A service whose replay guard is a UcanStore (`fail`: its commits throw SQLITE_IOERR), counting encode jobs and when commits come. */
  function observed(fail: { now: boolean }) {
    const seen = { encodes: 0, encodesAtCommit: [] as number[], answered: 0, answeredAtCommit: [] as number[] }
    const store = UcanStore.open(':memory:', {
      onReplayCommit: () => {
        seen.encodesAtCommit.push(seen.encodes)
        seen.answeredAtCommit.push(seen.answered)
        if (fail.now) throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_FSYNC' })
      },
    })
    const s = service(1, {
      replay: store.replay,
      wrapPool: (pool) => ({
        ...pool,
        encode: (outcomes, headers) => {
          seen.encodes++
          return pool.encode(outcomes, headers)
        },
      }),
    })
    const request = async (body: { headers: Record<string, string>; body: Uint8Array }) => {
      const res = await s.server.request(body as never)
      seen.answered++
      return res
    }
    return { ...s, store, seen, request }
  }

  test('the encode job is sent before the commit, the answer after it, byte for byte the answer without workers', async () => {
    const { request, seen, store, log } = observed({ now: false })
    const plain = service(0)
    const body = await encodeRequest(await Promise.all(Array.from({ length: 4 }, () => append())))
    const res = await request(body)
    // One commit, with the encode job already sent and no answer yet given; no second encode.
    expect(seen.encodesAtCommit).toEqual([1])
    expect(seen.answeredAtCommit).toEqual([0])
    expect(seen.encodes).toBe(1)
    expect(log.appends.length).toBe(4)
    const alone = await plain.server.request(body as never)
    expect(Buffer.from(res.body).equals(Buffer.from(alone.body))).toBe(true)
    store.close()
  })

  test('a commit that fails: the early receipts are dropped, the answer is StorageFailed, the retry gets the first outcome', async () => {
    const fail = { now: true }
    const { request, seen, store, log } = observed(fail)
    const invocations = await Promise.all(Array.from({ length: 3 }, () => append()))
    const body = await encodeRequest(invocations)
    const outs = (await sendRaw({ request }, body)).map(outOf)
    expect(outs.map((o) => o.error?.name)).toEqual(['StorageFailed', 'StorageFailed', 'StorageFailed'])
    expect(seen.encodes).toBe(2) // the provisional receipts, then the final ones
    fail.now = false
    // Their first outcomes (the three entries appended once, in whatever order they were sequenced).
    expect((await sendRaw({ request }, body)).map((r) => outOf(r).ok?.index as number).sort()).toEqual([0, 1, 2])
    expect(log.appends.length).toBe(3)
    store.close()
  })
})

describe("a request's invocations are charged in the request's order", () => {
  // The log's lookups finish in reverse order (the first invocation's last), as concurrent stats of
  // a new log's directory may: the rate limit must still refuse the request's last invocations.
  for (const workers of [0, 1]) {
    test(`with ${workers} worker(s): an issuer with 2 tokens gets its first 2 of 4 appended`, async () => {
      const log = new RecordingLog()
      let calls = 0
      log.creationRefusal = async () => {
        const delay = 40 - 10 * calls++
        await new Promise((r) => setTimeout(r, Math.max(0, delay)))
        return undefined
      }
      const admission = createAdmission({ client: { rate: 0, burst: 0 }, agent: { rate: 0.001, burst: 2 }, space: { rate: 0, burst: 0 }, memory: 100 })
      const s = service(workers, { admission, log })
      const invocations = await Promise.all(Array.from({ length: 4 }, () => append()))
      const byCid = new Map((await sendRaw(s.server, await encodeRequest(invocations))).map((r) => [r.ran.link().toString(), outOf(r)]))
      const receipts = invocations.map((i) => byCid.get(i.cid.toString())!)
      expect(receipts.map((r) => r.error?.name)).toEqual([undefined, undefined, 'RateLimited', 'RateLimited'])
      expect(log.appends.map((a) => a.invocation)).toEqual(invocations.slice(0, 2).map((i) => i.cid.toString()))
    })
  }
})

describe('the pool and the worker', () => {
  /** A pool of `workers` threads with `maxQueue` each, closed after the tests. */
  const startPool = (workers: number, maxQueue: number) => {
    const pool = createRequestPool({
      workers,
      maxQueue,
      settings: { signer: P.service.encode(), maxInvocationLifetime: 3600, reservedSpaces: [], maxInvocations: 64, maxVerifiedUcans: 1000, maxVerifiedUcanBytes: 1 << 20 },
    })
    pools.push(pool)
    return pool
  }

  test('a worker whose queue is full refuses busy; the next request is taken again', async () => {
    const pool = startPool(1, 1)
    const body = await encodeRequest(await Promise.all(Array.from({ length: 16 }, () => append())))
    const [first, second] = await Promise.all([pool.check(body.body, body.headers['content-type']!, now()), pool.check(body.body, body.headers['content-type']!, now())])
    expect(Array.isArray(first)).toBe(true)
    expect(second).toBe('busy')
    expect(Array.isArray(await pool.check(body.body, body.headers['content-type']!, now()))).toBe(true)
  })

  test("heap() sums the running workers' V8 heaps and starts none", async () => {
    const pool = startPool(2, 4)
    expect(await pool.heap()).toEqual({ used: 0, total: 0, workers: 0 })
    const body = await encodeRequest([await append()])
    expect(Array.isArray(await pool.check(body.body, body.headers['content-type']!, now()))).toBe(true)
    const one = await pool.heap()
    expect(one.workers).toBe(1)
    expect(one.used).toBeGreaterThan(1 << 20)
    expect(one.total).toBeGreaterThanOrEqual(one.used)
    await pool.close()
    expect(await pool.heap()).toEqual({ used: 0, total: 0, workers: 0 })
  })

  test('checkRequest says whether each invocation\'s block is canonical: also when a check before (1) refused it, and not for the same UCAN re-encoded', async () => {
    const ctx = { authorize: { service: P.service, principal: createPrincipalParser(), reservedSpaces: new Set([P.spaceB.did()]) }, maxInvocations: 4 }
    const ct = 'application/vnd.ipld.car'
    // Honest, and refused as ReservedSpace before check (1) ran: both canonical.
    const honest = await append()
    const reserved = await append({ space: P.spaceB.did() })
    const verdicts = (await checkRequest((await encodeRequest([honest, reserved])).body, ct, now(), ctx)) as { canonical: boolean; result: { error?: { name: string } } }[]
    expect(verdicts.map((v) => [v.canonical, v.result.error?.name])).toEqual([
      [true, undefined],
      [true, 'ReservedSpace'],
    ])
    // The honest invocation's map re-encoded with its keys in plain sort order (dag-cbor sorts by
    // length first) and hashed honestly: the same signed UCAN under another CID, not canonical.
    const data = CBOR.decode(honest.root.bytes as Uint8Array) as unknown as Record<string, unknown>
    const keys = Object.keys(data).sort()
    const bytes = new Uint8Array(Buffer.concat([Uint8Array.of(0xa0 + keys.length), ...keys.flatMap((k) => [CBOR.encode(k), CBOR.encode(data[k])])]))
    const cid = CID.createV1(CBOR.code, await sha256.digest(bytes))
    expect(cid.equals(honest.cid)).toBe(false)
    const root = CBOR.encode({ 'ucanto/message@7.0.0': { execute: [cid] } })
    const rootBlock = { cid: CID.createV1(CBOR.code, await sha256.digest(root)), bytes: root }
    const body = CAR.encode({ roots: [rootBlock], blocks: new Map([[cid.toString(), { cid, bytes }]]) } as never)
    const copy = (await checkRequest(body, ct, now(), ctx)) as { cid: string; canonical: boolean; result: { error?: { name: string } } }[]
    expect(copy.map((v) => [v.cid, v.canonical, v.result.error?.name])).toEqual([[cid.toString(), false, 'InvalidSignature']])
  })

  test('checkRequest falls back for what it does not handle', async () => {
    const ctx = { authorize: { service: P.service, principal: createPrincipalParser() }, maxInvocations: 4 }
    const ct = 'application/vnd.ipld.car'
    expect(await checkRequest(new Uint8Array([1, 2, 3]), ct, now(), ctx)).toBe(FALLBACK)
    const read = await encodeRequest([await readInvocation({ issuer: P.agent, service: P.service.did(), space: P.space.did() }).delegate()])
    expect(await checkRequest(read.body, ct, now(), ctx)).toBe(FALLBACK)
    const many = await encodeRequest(await Promise.all(Array.from({ length: 5 }, () => append())))
    expect(await checkRequest(many.body, ct, now(), ctx)).toBe(FALLBACK)
    const four = await encodeRequest(await Promise.all(Array.from({ length: 4 }, () => append())))
    const verdicts = await checkRequest(four.body, ct, now(), ctx)
    expect(verdicts).not.toBe(FALLBACK)
    expect((verdicts as { result: { ok?: unknown } }[]).every((v) => v.result.ok !== undefined)).toBe(true)
  })
})
