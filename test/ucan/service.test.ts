/**
 * src/ucan/service.ts, transport.ts, admission.ts and handlers/ beyond the authorization checks:
 * option validation, the request wrapper (`withSafeRequest`: statuses, admission, turns), the
 * plumbing around the log engine (reserve, refusals by name, the wire result) and the revoke record. Each test asserts a property whose
 * loss would change what a client gets or what the service spends; the comment names the check.
 * All in-process, through `server.request` with CAR agent messages.
 */
import { createHash } from 'node:crypto'
import { beforeAll, describe, expect, test, vi } from 'vitest'
import { delegate, invoke } from '@ucanto/core'
import { RSA } from '@ucanto/principal'
import type { API } from '@ucanto/core'
import {
  type Admission,
  type Charge,
  DEFAULT_MAX_RESPONSE_BYTES_IN_FLIGHT,
  LogCreationLimited,
  LogFull,
  TooManyOpenLogs,
  type RequestContext,
  type SpaceDID,
  type UcanServiceOptions,
  appendInvocation,
  createInvocation,
  createMemoryReplayGuard,
  ReplayPending,
  createMemoryRevocations,
  createPrincipalParser,
  createTurn,
  createUcanService,
  delegateAgentToService,
  delegateSpaceToAgent,
  readInvocation,
  UcanStore,
  revokeInvocation,
} from '../../src/ucan/index.js'
import { SchedulerFull, ServiceBusy } from '../../src/server/fair-scheduler.js'
import { encodeBase64 } from '../../src/tlog/encoding.js'
import { type Out, type Principals, honestChain, RecordingLog, encodeRequest, now, outOf, send, sendRaw } from './helpers.js'

let P: Principals
let spaceToAgent: API.Delegation
let agentToService: API.Delegation

beforeAll(async () => {
  ;({ P, spaceToAgent, agentToService } = await honestChain())
})

const append = async (entry = new Uint8Array([1]), agent = P.agent, lifetime?: number) =>
  (await appendInvocation({ agent, service: P.service, space: P.space.did(), entry, agentToService, ...(lifetime !== undefined && { lifetime }) })).delegate()

const read = (issuer: API.Signer = P.agent, space = P.space.did()) => readInvocation({ issuer, service: P.service, space }).delegate()

function setup(options: Partial<UcanServiceOptions> = {}) {
  const log = new RecordingLog()
  const logged: { details: Record<string, unknown>; message: string }[] = []
  const server = createUcanService({
    signer: P.service,
    log,
    refusalDelayMs: 0,
    logger: { error: (details, message) => void logged.push({ details, message }) },
    ...options,
  })
  return { log, server, logged }
}

/** POSTs `invocations` from `client`; the raw HTTP-ish answer. */
async function post(server: ReturnType<typeof setup>['server'], invocations: API.Invocation[], client?: string) {
  const body = await encodeRequest(invocations)
  return server.request({ ...body, ...(client !== undefined && { client }) } as never) as Promise<{ status?: number; headers: Record<string, string>; body: Uint8Array }>
}

/**
 * An Admission that admits everything and records each call, and the turns: every turn taken
 * must be given back exactly once (a leaked turn would starve its client address for good).
 */
function recordingAdmission() {
  const calls: string[] = []
  const charges: Charge[] = []
  const turns = { taken: 0, given: 0, always: [] as boolean[], contexts: [] as RequestContext[] }
  const admission: Admission = {
    request: (n, request) => (calls.push(`request ${n} ${request.client ?? '-'}`), undefined),
    turn: async (request, o) => {
      turns.taken++
      turns.always.push(o?.always === true)
      turns.contexts.push(request)
      let given = false
      return () => {
        expect(given, 'a turn given back twice').toBe(false)
        given = true
        turns.given++
      }
    },
    check: (c) => (calls.push(`check ${c.issuer}`), undefined),
    charge: (c) => (charges.push(c), calls.push(`charge ${c.issuer} ${c.space ?? '-'}`), undefined),
    debit: (c) => void calls.push(`debit ${c.issuer}`),
  }
  return { admission, calls, charges, turns }
}

describe('construction (createUcanService option checks)', () => {
  test('bounds are inclusive at 1 and 0; out-of-range, fractional and missing options throw', () => {
    const log = new RecordingLog()
    // maxInvocationLifetime < 1, maxInvocationsPerRequest < 1, refusalDelayMs < 0: the bounds themselves are valid
    expect(() => createUcanService({ signer: P.service, log, maxInvocationLifetime: 1 })).not.toThrow()
    expect(() => createUcanService({ signer: P.service, log, maxInvocationsPerRequest: 1 })).not.toThrow()
    expect(() => createUcanService({ signer: P.service, log, refusalDelayMs: 0 })).not.toThrow()
    for (const maxInvocationsPerRequest of [0, -1, 1.5, Number.NaN]) {
      expect(() => createUcanService({ signer: P.service, log, maxInvocationsPerRequest })).toThrow(RangeError)
    }
    for (const refusalDelayMs of [-1, 1.5, Number.POSITIVE_INFINITY]) {
      expect(() => createUcanService({ signer: P.service, log, refusalDelayMs })).toThrow(RangeError)
    }
    // `log === undefined` → TypeError
    expect(() => createUcanService({ signer: P.service } as unknown as UcanServiceOptions)).toThrow(TypeError)
  })

  test('a maxResponseBytes above the default in-flight pool grows the pool to one budget (no in-flight option needed)', async () => {
    // Math.max(DEFAULT_MAX_RESPONSE_BYTES_IN_FLIGHT, maxResponseBytes)
    const maxResponseBytes = 2 * DEFAULT_MAX_RESPONSE_BYTES_IN_FLIGHT
    const { server, log } = setup({ maxResponseBytes })
    log.logs.set(P.space.did(), [new Uint8Array([7])])
    expect((await send(server, await read())).ok).toEqual({ entries: [encodeBase64(new Uint8Array([7]))], total: 1 })
    expect(log.readBudgets).toEqual([Math.floor((maxResponseBytes * 3) / 4)])
  })
})

describe('turns (createTurn: counted holds on one turn)', () => {
  /** An acquire that records each take and each give-back; `grant()` resolves the pending take. */
  function acquirer() {
    const log = { takes: [] as boolean[], given: 0 }
    let grant: () => void = () => {}
    const acquire = (always: boolean) => {
      log.takes.push(always)
      return new Promise<() => void>((r) => (grant = () => r(() => void log.given++)))
    }
    return { acquire, log, grant: () => grant() }
  }

  test('a second holder shares the held turn (no second take); it is given back once, when the last holder is idle', async () => {
    // guards: busy()'s `if (release !== undefined) return` and idle()'s `holders === 0 && release !== undefined`
    const a = acquirer()
    const turn = createTurn(a.acquire)
    const first = turn.busy()
    a.grant()
    await first
    const second = turn.busy() // shares the held turn: no take (checked before awaiting it)
    expect(a.log.takes).toEqual([false])
    await second
    turn.idle()
    expect(a.log.given, 'given back while a holder still works').toBe(0)
    turn.idle()
    expect(a.log.given).toBe(1)
    // Taken again later: a re-take, never refused (`always`).
    const again = turn.busy()
    a.grant()
    await again
    expect(a.log.takes).toEqual([false, true])
    turn.idle()
    expect(a.log.given).toBe(2)
  })

  test('a turn every holder gave up before it was granted is given back as soon as it is granted', async () => {
    // guards: the `if (holders === 0) r()` when the take resolves, and idle()'s `release !== undefined`
    const a = acquirer()
    const turn = createTurn(a.acquire)
    const pending = turn.busy()
    expect(() => turn.idle(), 'idle before the turn is granted').not.toThrow()
    expect(a.log.given).toBe(0)
    a.grant()
    await pending
    expect(a.log.given, 'a granted turn nobody holds must not leak').toBe(1)
  })
})

describe('the request wrapper (withSafeRequest)', () => {
  test('every turn taken is given back exactly once, whatever the outcome; only a first take may be refused', async () => {
    const { admission, turns } = recordingAdmission()
    const { server, log } = setup({ admission, maxInvocationsPerRequest: 2 })
    const balanced = () => expect(turns.given, `turns given back of ${turns.taken} taken`).toBe(turns.taken)

    // An append: the request's take, the invocation's take, the invocation's re-take after waiting
    // for its batch, the request's re-take to encode the answer. Re-takes are `always` (never refused:
    // the work already ran and must be answered).
    expect(((await post(server, [await append()])).status ?? 200)).toBe(200)
    expect(turns.always).toEqual([false, false, true, true])
    balanced()
    // Handlers see the request's client address (their context's request) — here none.
    expect(turns.contexts.every((c) => c.client === undefined)).toBe(true)

    // A refused invocation, a read, two invocations, a bad body, too many invocations, a wrong content type.
    expect(((await post(server, [await append(new Uint8Array(0))])).status ?? 200)).toBe(200)
    balanced()
    expect(((await post(server, [await read()])).status ?? 200)).toBe(200)
    balanced()
    expect(((await post(server, [await append(), await read()])).status ?? 200)).toBe(200)
    balanced()
    const bad = await server.request({ headers: { 'content-type': 'application/vnd.ipld.car' }, body: new Uint8Array([1, 2, 3]) })
    expect(bad.status).toBe(400)
    balanced()
    expect((await post(server, [await append(), await append(), await append()])).status).toBe(413)
    balanced()
    const body = await encodeRequest([await append()])
    expect((await server.request({ headers: { 'content-type': 'application/json' }, body: body.body })).status).toBe(415)
    balanced()
    expect(log.appends).toHaveLength(2)

    // A revocation waits for its record with the turn given back, then takes it again (`always`).
    const recorded = createUcanService({
      signer: P.service,
      log,
      admission,
      revocationRecorder: { record: async (record) => ({ record, created: true, index: 0 }) } as UcanServiceOptions['revocationRecorder'],
    })
    turns.always.length = 0
    const revoke = await revokeInvocation({ issuer: P.agent, service: P.service, ucan: agentToService }).delegate()
    expect((await send(recorded, revoke)).ok).toBeDefined()
    expect(turns.always).toEqual([false, false, true, true])
    balanced()
  })

  test('status bodies are short plain text (400 for a body that is not a CAR agent message), never a stack', async () => {
    const { server, logged } = setup()
    const res = await server.request({ headers: { 'content-type': 'application/vnd.ipld.car' }, body: new TextEncoder().encode('not a car') })
    expect(res.status).toBe(400)
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8')
    const text = new TextDecoder().decode(res.body)
    expect(text).toMatch(/^Bad request: .*\n$/)
    expect(text).not.toMatch(/\bat .*:\d+/)
    expect(logged).toHaveLength(0) // a body that does not decode is the client's fault: nothing to log
  })

  test('the invocation cap is inclusive (exactly maxInvocationsPerRequest run), and the rest of a request is charged after decoding', async () => {
    // invocations.length > maxInvocations; invocations.length > 1 → admission.request(n - 1)
    const { admission, calls } = recordingAdmission()
    const { server, log } = setup({ admission, maxInvocationsPerRequest: 3 })
    const res = await post(server, [await append(), await append(), await append()], '192.0.2.4')
    expect(res.status ?? 200).toBe(200)
    expect(log.appends).toHaveLength(3)
    expect(calls.filter((c) => c.startsWith('request'))).toEqual(['request 1 192.0.2.4', 'request 2 192.0.2.4'])
    // A single invocation is charged once only.
    calls.length = 0
    await post(server, [await append()], '192.0.2.4')
    expect(calls.filter((c) => c.startsWith('request'))).toEqual(['request 1 192.0.2.4'])
  })

  test('the rest of a request refused by the address limit → 429 with Retry-After, nothing runs', async () => {
    const { admission } = recordingAdmission()
    admission.request = (n) => (n > 1 ? 0 : undefined)
    const { server, log } = setup({ admission })
    const res = await post(server, [await append(), await append(), await append()])
    expect(res.status).toBe(429)
    expect(res.headers['retry-after']).toBe('1') // at least 1 s, whole seconds
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8')
    expect(log.calls).toBe(0)
  })

  test('a request with no invocation is answered 200 with no receipt (not 429: nothing was refused)', async () => {
    // waits.length > 0 && waits.every(...)
    const { server } = setup()
    const receipts = await sendRaw(server, await encodeRequest([]))
    expect(receipts).toEqual([])
  })

  test('SchedulerFull at the request\'s first turn → 429 Retry-After 1, nothing runs; another turn failure → 400, logged', async () => {
    const { admission } = recordingAdmission()
    let failure: Error = new SchedulerFull('full')
    admission.turn = async () => {
      throw failure
    }
    const { server, log, logged } = setup({ admission })
    const res = await post(server, [await append()])
    expect(res.status).toBe(429)
    expect(res.headers['retry-after']).toBe('1')
    failure = new Error('scheduler broken')
    const broken = await post(server, [await append()])
    expect(broken.status).toBe(400)
    expect(new TextDecoder().decode(broken.body)).toMatch(/^Bad request: .*\n$/) // a short plain-text reason, not an empty body
    expect(logged.map((l) => l.message)).toEqual(['ucanto request failed'])
    expect((logged[0]?.details.err as Error | undefined)?.message, 'the operator gets the cause').toBe('scheduler broken')
    expect(log.calls).toBe(0)
  })

  test('an invocation refused its own turn gets RateLimited and does not run; if all were, the request is 429', async () => {
    const { admission, turns } = recordingAdmission()
    const inner = admission.turn
    let takes = 0
    let refuse: (take: number) => boolean = () => false
    admission.turn = async (request, o) => {
      const take = takes++
      if (o?.always !== true && refuse(take)) throw new SchedulerFull('full')
      return inner(request, o)
    }
    const { server, log } = setup({ admission })

    // Take 0 is the request's own; every invocation's first take is refused.
    takes = 0
    refuse = (take) => take > 0
    const all = await post(server, [await append(), await append()])
    expect(all.status).toBe(429)
    expect(all.headers['retry-after']).toBe('1')
    expect(log.calls).toBe(0)
    expect(turns.given).toBe(turns.taken)

    // Only the second invocation refused: the first appends, the second says RateLimited, 200.
    takes = 0
    refuse = (take) => take === 2
    const a = await append(new Uint8Array([1]))
    const b = await append(new Uint8Array([2]))
    const receipts = await sendRaw(server, await encodeRequest([a, b]))
    const byRan = new Map(receipts.map((r) => [r.ran.link().toString(), outOf(r)]))
    expect(byRan.get(a.cid.toString())?.ok).toBeDefined()
    expect(byRan.get(b.cid.toString())?.error?.name).toBe('RateLimited')
    expect(log.appends.map((x) => [...x.entry])).toEqual([[1]])
    expect(turns.given).toBe(turns.taken)

    // Any other failure of an invocation's turn is not a rate limit: the request fails (400).
    takes = 0
    admission.turn = async (request, o) => {
      if (takes++ === 1) throw new Error('scheduler broken')
      return inner(request, o)
    }
    expect((await post(server, [await append()])).status).toBe(400)
    expect(turns.given).toBe(turns.taken)
  })

  test('ServiceBusy (the service-wide queue is full) at the request\'s first turn → 503 Retry-After 1 naming ServiceBusy, nothing runs', async () => {
    const { admission, turns } = recordingAdmission()
    admission.turn = async () => {
      throw new ServiceBusy('busy')
    }
    const { server, log } = setup({ admission })
    const res = await post(server, [await append()])
    expect(res.status).toBe(503)
    expect(res.headers['retry-after']).toBe('1')
    expect(new TextDecoder().decode(res.body)).toMatch(/^ServiceBusy: .*retry later\n$/)
    expect(log.calls).toBe(0)
    expect(turns.given).toBe(turns.taken)
  })

  test('an invocation shed from the queue (ServiceBusy) gets RateLimited naming ServiceBusy; if all were refused, the request is 503', async () => {
    const { admission, turns } = recordingAdmission()
    const inner = admission.turn
    let takes = 0
    let refuse: (take: number) => Error | undefined = () => undefined
    admission.turn = async (request, o) => {
      const err = o?.always === true ? undefined : refuse(takes++)
      if (err) throw err
      return inner(request, o)
    }
    const { server, log } = setup({ admission })

    // Take 0 is the request's own; one invocation shed, the other refused SchedulerFull: 503, nothing ran.
    takes = 0
    refuse = (take) => (take === 1 ? new ServiceBusy('busy') : take === 2 ? new SchedulerFull('full') : undefined)
    const all = await post(server, [await append(), await append()])
    expect(all.status).toBe(503)
    expect(all.headers['retry-after']).toBe('1')
    expect(log.calls).toBe(0)
    expect(turns.given).toBe(turns.taken)

    // Only the second shed: the first appends, the second says RateLimited (ServiceBusy), 200.
    takes = 0
    refuse = (take) => (take === 2 ? new ServiceBusy('busy') : undefined)
    const a = await append(new Uint8Array([1]))
    const b = await append(new Uint8Array([2]))
    const receipts = await sendRaw(server, await encodeRequest([a, b]))
    const byRan = new Map(receipts.map((r) => [r.ran.link().toString(), outOf(r)]))
    expect(byRan.get(a.cid.toString())?.ok).toBeDefined()
    expect(byRan.get(b.cid.toString())?.error?.name).toBe('RateLimited')
    expect(byRan.get(b.cid.toString())?.error?.message).toMatch(/^ServiceBusy: /)
    expect(log.appends.map((x) => [...x.entry])).toEqual([[1]])
    expect(turns.given).toBe(turns.taken)
  })

  test('a request that reads reserves from the in-flight pool even when it also appends: pool spent → 503, nothing runs', async () => {
    // invocations.some((inv) => inv.capabilities[0]?.can === 'tlog/read')
    const log = new RecordingLog()
    log.logs.set(P.space.did(), [new Uint8Array([1])])
    let release: () => void = () => {}
    const gate = new Promise<void>((r) => (release = r))
    let reading: () => void = () => {}
    const started = new Promise<void>((r) => (reading = r))
    let first = true
    const slow = Object.assign(Object.create(log), {
      // Only the first read waits (so a wrongly admitted second one fails the test at once).
      async read(...args: Parameters<RecordingLog['read']>) {
        if (first) {
          first = false
          reading()
          await gate
        }
        return log.read(...args)
      },
    }) as RecordingLog
    const server = createUcanService({ signer: P.service, log: slow, maxResponseBytes: 1000, maxResponseBytesInFlight: 1000 })
    const held = post(server, [await read()])
    await started // the first request holds the whole pool
    const mixed = await post(server, [await append(), await read(P.mallory)])
    expect(mixed.status).toBe(503)
    expect(mixed.headers['retry-after']).toBe('1')
    expect(slow.calls).toBe(0) // (counted on `slow`: RecordingLog.append counts on its `this`)
    // A request that does not read reserves nothing: it runs while the pool is spent.
    expect((await post(server, [await append()])).status ?? 200).toBe(200)
    expect(slow.calls).toBe(1)
    release()
    expect((await held).status ?? 200).toBe(200)
  })
  test('an invocation with no capability gets InvalidCapability in a 200 answer, also beside a read check (not a 400)', async () => {
    // guards: `inv.capabilities[0]?.can` in the read-pool check (a capability-less invocation must not throw)
    const { server, log } = setup()
    const empty = await delegate({ issuer: P.agent, audience: P.service, capabilities: [] as never, expiration: now() + 60 })
    const res = await post(server, [empty as never])
    expect(res.status ?? 200).toBe(200)
    const [receipt] = await sendRaw(server, await encodeRequest([empty as never]))
    expect(outOf(receipt!).error?.name).toBe('InvalidCapability')
    expect(log.calls).toBe(0)
  })

  test('with refusalDelayMs 0 a refusal is answered at once: no tarpit timer is set', async () => {
    // guards: `if (limits.refusalDelayMs > 0)` before the tarpit's setTimeout
    const { admission } = recordingAdmission()
    admission.request = () => 4
    const { server, log } = setup({ admission, refusalDelayMs: 0 })
    const body = await encodeRequest([await append()])
    const timers = vi.spyOn(globalThis, 'setTimeout')
    try {
      const res = await server.request(body)
      expect(res.status).toBe(429)
      expect(res.headers['retry-after']).toBe('4')
      expect(new TextDecoder().decode(res.body)).toMatch(/^rate limited.*\n$/)
      expect(timers).not.toHaveBeenCalled()
    } finally {
      timers.mockRestore()
    }
    expect(log.calls).toBe(0)
  })

  test('a request whose every invocation was refused is 429 with the longest of their waits as Retry-After', async () => {
    // guards: Math.max(...waits) (the shortest would invite a retry that is refused again)
    const { admission } = recordingAdmission()
    const waits = [2, 7]
    admission.check = () => waits.shift()
    const { server, log } = setup({ admission })
    const res = await post(server, [await append(new Uint8Array([1])), await append(new Uint8Array([2]))])
    expect(res.status).toBe(429)
    expect(res.headers['retry-after']).toBe('7')
    expect(log.calls).toBe(0)
  })
})

describe('admission of one invocation (admitted)', () => {
  test('an issuer out of tokens is refused before any chain work: RateLimited (429), nothing authorized, charged or debited', async () => {
    // early = charge && admission.check(charge); if (early !== undefined) return limit(early)
    const { admission, calls } = recordingAdmission()
    admission.check = (c) => (calls.push(`check ${c.issuer}`), 2.5)
    const { server, log } = setup({ admission })
    const res = await post(server, [await append()])
    expect(res.status).toBe(429)
    expect(res.headers['retry-after']).toBe('3')
    expect(calls).toEqual(['request 1 -', `check ${P.agent.did()}`])
    expect(log.calls).toBe(0)
  })

  test('a verified invocation that fails authorization debits its issuer once and charges nothing', async () => {
    // if (charge) admission.debit(charge)
    const { admission, calls } = recordingAdmission()
    const { server, log } = setup({ admission })
    // Mallory signs her own invocation (it verifies) with the agent's delegation: not hers.
    const stolen = await append(new Uint8Array([1]), P.mallory)
    expect((await send(server, stolen)).error?.name).toBe('DelegationIssuerMismatch')
    expect(calls).toEqual(['request 1 -', `check ${P.mallory.did()}`, `debit ${P.mallory.did()}`])
    expect(log.calls).toBe(0)
  })

  test('a charge names the signed invocation (issuer and signature) and lasts until its exp; a read charges no space', async () => {
    // chargeId(invocation): sha2-256 of the issuer DID, a space and the signature; { id, expiresAt: invocation.expiration, issuer }
    const { admission, charges } = recordingAdmission()
    const { server, log } = setup({ admission })
    log.logs.set(P.space.did(), [])
    const r1 = await read()
    const r2 = await readInvocation({ issuer: P.agent, service: P.service, space: P.space.did(), offset: 1 }).delegate()
    await send(server, r1)
    await send(server, r1) // the same signed read again (reads are not replay-guarded): same charge id
    await send(server, r2)
    const a = await append()
    await send(server, a)
    const id = (inv: API.Invocation) => createHash('sha256').update(`${P.agent.did()} `).update(inv.signature).digest('base64')
    expect(charges.map((c) => c.id)).toEqual([r1, r1, r2, a].map(id))
    expect(new Set(charges.map((c) => c.id)).size).toBe(3)
    expect(charges.map((c) => c.expiresAt)).toEqual([r1, r1, r2, a].map((inv) => inv.expiration))
    expect(charges.map((c) => c.space)).toEqual([undefined, undefined, undefined, P.space.did()])
  })

  // Found reading a heap snapshot of the soak (issue 15): the service remembers up to
  // --charge-memory charge ids (ChargeMemory), each once the issuer DID and signature in base64,
  // ~170 B for an Ed25519 issuer but ~750 B for an RSA-2048 one and ~1.4 KB for RSA-4096: 100,000
  // of those is up to ~140 MiB, past npm start's 192 MiB heap. A charge id is now a fixed-size digest.
  test("a charge id is the same size whatever the issuer's key (a digest): an RSA issuer costs the charge memory what an Ed25519 one does", async () => {
    const { admission, charges } = recordingAdmission()
    const { server, log } = setup({ admission })
    log.logs.set(P.space.did(), [])
    const rsa = await RSA.generate()
    await send(server, await read())
    await send(server, await read(rsa))
    expect(charges.map((c) => c.issuer)).toEqual([P.agent.did(), rsa.did()])
    const [a, b] = charges.map((c) => c.id)
    expect(a!.length).toBe(b!.length)
    expect(b!.length).toBeLessThanOrEqual(44)
  })
})

describe('tlog/append and the log engine', () => {
  /** A RecordingLog with `reserve`, recording each reservation and its release. */
  function reserving() {
    const log = new RecordingLog()
    const events: string[] = []
    let refuse: Error | undefined
    Object.assign(log, {
      async reserve(space: string, meta: { client?: string }) {
        events.push(`reserve ${space} ${meta.client ?? '-'}`)
        if (refuse !== undefined) {
          const e = refuse
          refuse = undefined
          throw e
        }
        return { release: () => void events.push('release') }
      },
    })
    return { log, events, refuseNext: (e: Error) => (refuse = e) }
  }

  test('a log refusal at reserve comes back by name and leaves the invocation unused: sent again, it appends', async () => {
    const { log, events, refuseNext } = reserving()
    const { server } = setup({ log })
    const inv = await append()
    refuseNext(new TooManyOpenLogs('busy'))
    expect((await send(server, inv)).error?.name).toBe('TooManyOpenLogs')
    expect(log.calls).toBe(0)
    const again = await send(server, inv)
    expect(again.ok, JSON.stringify(again.error)).toMatchObject({ index: 0 })
    expect(log.appends).toHaveLength(1)
    expect(events).toEqual([`reserve ${P.space.did()} -`, `reserve ${P.space.did()} -`, 'release'])
  })

  test('any other failure at reserve → InternalError (logged), nothing appended', async () => {
    // catch at reserve: `throw cause` for what is not a LogRefusal
    const { log, events, refuseNext } = reserving()
    const { server, logged } = setup({ log })
    refuseNext(new Error('disk on fire'))
    expect((await send(server, await append())).error?.name).toBe('InternalError')
    expect(log.calls).toBe(0)
    expect(logged).toHaveLength(1)
    expect(events).toEqual([`reserve ${P.space.did()} -`])
  })

  test('the reservation is held during the append and released once after it, also when the append fails', async () => {
    const { log, events } = reserving()
    const append0 = log.append.bind(log)
    log.append = async (...args) => {
      events.push('append')
      return append0(...args)
    }
    const { server } = setup({ log })
    const ok = await post(server, [await append()], '192.0.2.8')
    expect(ok.status ?? 200).toBe(200)
    log.failNext = new Error('io')
    expect((await send(server, await append())).error?.name).toBe('InternalError')
    expect(events).toEqual([`reserve ${P.space.did()} 192.0.2.8`, 'append', 'release', `reserve ${P.space.did()} -`, 'append', 'release'])
  })

  test('log.append gets the request\'s client address (it pays for creating the log)', async () => {
    const { server, log } = setup()
    await post(server, [await append()], '192.0.2.5')
    expect(log.appends[0]).toMatchObject({ space: P.space.did(), client: '192.0.2.5' })
  })

  test('a log refusal from log.append reaches the client by name, and a replay of the invocation gets the same name', async () => {
    // answer(): logRefusal(failure) ?? InternalError
    const { server, log } = setup()
    log.failNext = new LogFull('full')
    const inv = await append()
    expect((await send(server, inv)).error?.name).toBe('LogFull')
    expect((await send(server, inv)).error?.name).toBe('LogFull')
    expect(log.calls).toBe(1)
  })

  test('the receipt carries exactly the wire fields of the result, inclusion proof included (appendResultOf)', async () => {
    const { server, log } = setup()
    const hashes = [new Uint8Array(32).fill(9), new Uint8Array(32).fill(8)]
    const proof = hashes.map(encodeBase64)
    const append0 = log.append.bind(log)
    log.append = async (...args) => ({ ...(await append0(...args)), inclusionProof: hashes, internalPath: '/var/lib/ucanlog' }) as never
    const out = await send(server, await append())
    expect(out.ok).toEqual({
      logId: P.space.did(),
      origin: `ucanlog/logs/${P.space.did()}`,
      index: 0,
      treeSize: 1,
      rootHash: Buffer.alloc(32, 0).toString('base64'),
      checkpoint: expect.stringContaining(`ucanlog/logs/${P.space.did()}\n1\n`),
      inclusionProof: proof,
      published: true,
    })
    // Not published: the integrated tree, no checkpoint and no proof, whatever else the engine returns.
    log.append = async (space, entry, meta) => {
      const { logId, origin, index } = await append0(space, entry, meta)
      return { logId, origin, index, published: false, tree: { size: 7, rootHash: hashes[0]! }, checkpoint: 'x', inclusionProof: hashes, internalPath: '/var/lib/ucanlog' } as never
    }
    const pending = await send(server, await append())
    expect(pending.ok).toEqual({
      logId: P.space.did(),
      origin: `ucanlog/logs/${P.space.did()}`,
      index: 1,
      treeSize: 7,
      rootHash: proof[0],
      checkpoint: '',
      inclusionProof: [],
      published: false,
    })
  })

  test('a replay is answered before any signature check up to its exp, inclusive; after it → Expired', async () => {
    // early(): now() <= invocation.expiration
    let verifies = 0
    const inner = createPrincipalParser()
    const principal: API.PrincipalParser = {
      parse(did) {
        const v = inner.parse(did)
        return { did: () => v.did(), toDIDKey: () => v.toDIDKey(), withDID: (id: API.DID) => v.withDID(id), verify: (p: Uint8Array, s: API.Signature) => (verifies++, v.verify(p, s)) } as API.Verifier
      },
    }
    let t = now()
    const { server, log } = setup({ principal, now: () => t })
    const inv = await append(new Uint8Array([1]), P.agent, 60)
    const first = await send(server, inv)
    expect(first.ok).toBeDefined()
    t = inv.expiration
    const before = verifies
    expect(await send(server, inv)).toEqual(first)
    expect(verifies - before, 'signature checks of a replay at its exp').toBe(0)
    t = inv.expiration + 1
    expect((await send(server, inv)).error?.name).toBe('Expired')
    expect(log.calls).toBe(1)
  })

  test('creationRefusal is asked only for a did:key space: another `with` is InvalidCapability, not a log refusal', async () => {
    // early(): if (space.error || log.creationRefusal === undefined) return undefined
    const { server, log } = setup()
    const asked: string[] = []
    Object.assign(log, {
      async creationRefusal(space: string) {
        asked.push(space)
        return new LogCreationLimited('no')
      },
    })
    const inv = await invoke({
      issuer: P.agent,
      audience: P.service,
      capability: { can: 'tlog/append', with: 'did:web:example.com', nb: { data: 'AQ==', delegation: 'x' } },
      expiration: now() + 60,
    }).delegate()
    expect((await send(server, inv)).error?.name).toBe('InvalidCapability')
    expect(asked).toEqual([])
  })

  test('a creationRefusal that rejects with a log refusal reaches the client by name (append and create)', async () => {
    const { server, log } = setup()
    Object.assign(log, {
      async creationRefusal() {
        throw new LogCreationLimited('no')
      },
    })
    log.refuse()
    expect((await send(server, await append())).error?.name).toBe('LogCreationLimited')
    const create = await (await createInvocation({ agent: P.agent, service: P.service, space: P.space.did(), agentToService })).delegate()
    expect((await send(server, create)).error?.name).toBe('LogCreationLimited')
  })
})

describe('tlog/create and the log engine', () => {
  const createInv = async () => (await createInvocation({ agent: P.agent, service: P.service, space: P.space.did(), agentToService })).delegate()

  test('log.create gets the client address; the receipt carries exactly the wire fields', async () => {
    const { server, log } = setup()
    const calls: unknown[] = []
    const create0 = log.create.bind(log)
    Object.assign(log, { create: async (space: SpaceDID, meta?: { client?: string }) => (calls.push([space, meta]), { ...(await create0(space)), secret: 'x' }) })
    const res = await post(server, [await createInv()], '192.0.2.6')
    const [receipt] = await sendRaw({ request: () => res }, { headers: {}, body: new Uint8Array() })
    expect(outOf(receipt!).ok).toEqual({ logId: P.space.did(), origin: `ucanlog/logs/${P.space.did()}`, vkey: `ucanlog/logs/${P.space.did()}+00000000+AQ==`, treeSize: 0 })
    expect(calls).toEqual([[P.space.did(), expect.objectContaining({ client: '192.0.2.6' })]])
  })

  test('log.create refusing by a log refusal → that name; failing otherwise → InternalError, logged', async () => {
    const { server, log, logged } = setup()
    log.create = async () => {
      throw new LogCreationLimited('no')
    }
    expect((await send(server, await createInv())).error?.name).toBe('LogCreationLimited')
    expect(logged).toHaveLength(0)
    log.create = async () => {
      throw new Error('disk')
    }
    expect((await send(server, await createInv())).error?.name).toBe('InternalError')
    expect(logged.map((l) => [l.message, l.details.can])).toEqual([['tlog/create failed', 'tlog/create']])
  })
})

describe('tlog/read bounds', () => {
  const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill)

  test('a read whose with is not a did:key → InvalidCapability, the engine is not asked', async () => {
    const { server, log } = setup()
    const inv = await invoke({ issuer: P.agent, audience: P.service, capability: { can: 'tlog/read', with: 'did:web:example.com', nb: {} }, expiration: now() + 60 }).delegate()
    expect((await send(server, inv)).error?.name).toBe('InvalidCapability')
    expect(log.readBudgets).toEqual([])
  })

  test('a read without nb reads the default page from 0', async () => {
    // (capability.nb ?? {})
    const { server, log } = setup()
    log.logs.set(P.space.did(), [bytes(1, 1), bytes(1, 2)])
    const inv = await invoke({ issuer: P.agent, audience: P.service, capability: { can: 'tlog/read', with: P.space.did() }, expiration: now() + 60 }).delegate()
    expect((await send(server, inv)).ok).toEqual({ entries: [bytes(1, 1), bytes(1, 2)].map(encodeBase64), total: 2 })
  })

  test('an entry that exactly fills the budget is returned (the bound is inclusive)', async () => {
    // bytes + text.length > remaining
    const { server, log } = setup({ maxResponseBytes: 400 })
    log.logs.set(P.space.did(), [bytes(300, 1)]) // 400 base64 characters
    expect((await send(server, await read())).ok).toEqual({ entries: [encodeBase64(bytes(300, 1))], total: 1 })
  })

  test('the budget holds even if the engine returns more than asked: the page is cut in the service', async () => {
    const { server, log } = setup({ maxResponseBytes: 1000 })
    const entries = [bytes(300, 1), bytes(300, 2), bytes(300, 3)] // 400 characters each
    log.read = async () => ({ entries, total: 3 })
    expect((await send(server, await read())).ok).toEqual({ entries: entries.slice(0, 2).map(encodeBase64), total: 3 })
  })
})

describe('ucan/revoke record', () => {
  test('ok is { time in ms, ucan, scope, index } from the recorder, which gets the record with the invocation clock', async () => {
    const records: unknown[] = []
    let index: number | undefined = 7
    const revocationRecorder = {
      record: async (record: { time: number }) => (records.push(record), { record, created: true, index }),
    }
    const inv = await revokeInvocation({ issuer: P.agent, service: P.service, ucan: agentToService, lifetime: 60 }).delegate()
    // An injected clock (Unix seconds) inside the invocation's time bounds.
    const { server: s2 } = setup({ revocationRecorder: revocationRecorder as never, now: () => inv.expiration - 30 })
    const out = await send(s2, inv)
    expect(out.ok).toEqual({ time: (inv.expiration - 30) * 1000, ucan: agentToService.cid.toString(), scope: P.agent.did(), index: 7 })
    expect(records).toEqual([
      { ucan: agentToService.cid.toString(), scope: P.agent.did(), revoker: P.agent.did(), invocation: inv.cid.toString(), time: inv.expiration - 30 },
    ])
    // Not yet in the revocation log: no index.
    index = undefined
    const inv2 = await revokeInvocation({ issuer: P.agent, service: P.service, ucan: agentToService, lifetime: 60 }).delegate()
    const out2 = await send(s2, inv2)
    expect(out2.ok).not.toHaveProperty('index')
  })

  test('no recorder, or a recorder that fails → InternalError, logged', async () => {
    const { server, logged } = setup()
    const inv = () => revokeInvocation({ issuer: P.agent, service: P.service, ucan: agentToService }).delegate()
    expect((await send(server, await inv())).error?.name).toBe('InternalError')
    expect(logged.map((l) => l.details.can)).toEqual(['ucan/revoke'])
    const failing = setup({ revocationRecorder: { record: async () => { throw new Error('db') } } as never })
    expect((await send(failing.server, await inv())).error?.name).toBe('InternalError')
    expect(failing.logged).toHaveLength(1)
  })
})

describe('outside a request, and the service key', () => {
  test('handlers called by ucanto\'s own run (no request: no client, no turn, an unpooled read budget) still work', async () => {
    // context?.request ?? {}; waiting(): turn?.idle(); read: context?.responses ?? responses.unpooled()
    const { server, log } = setup()
    const runOut = async (inv: API.Invocation) => outOf((await (server as unknown as { run(i: API.Invocation): Promise<API.Receipt> }).run(inv)) as API.Receipt)
    const a = await runOut(await append())
    expect(a.ok, JSON.stringify(a.error)).toMatchObject({ index: 0 })
    expect(log.appends[0]).not.toHaveProperty('client')
    expect((await runOut(await read())).ok).toEqual({ entries: [encodeBase64(new Uint8Array([1]))], total: 1 })
    const create = await (await createInvocation({ agent: P.agent, service: P.service, space: P.space.did(), agentToService })).delegate()
    expect((await runOut(create)).ok).toMatchObject({ treeSize: 1 })
  })

  test('an invocation refused by the admission outside a request gets RateLimited (there is no transport to tell)', async () => {
    // guards: `o.rateLimited?.(seconds)` in admit(): no rateLimited callback without a request
    const { admission } = recordingAdmission()
    admission.check = () => 3
    const { server, log } = setup({ admission })
    const receipt = await (server as unknown as { run(i: API.Invocation): Promise<API.Receipt> }).run(await append())
    expect((receipt.out as Out).error?.name).toBe('RateLimited') // (not encoded: the error object itself)
    expect(log.calls).toBe(0)
  })

  test('a service key that is not Ed25519 (RSA) is used as it is: its receipts verify', async () => {
    // fastIfEd25519: only an Ed25519 did:key signer is swapped for the node:crypto one
    const rsa = await RSA.generate()
    const server = createUcanService({ signer: rsa, log: new RecordingLog() })
    const inv = await invoke({ issuer: P.agent, audience: rsa, capability: { can: 'tlog/nothing', with: P.space.did() }, expiration: now() + 60 }).delegate()
    const [receipt] = await sendRaw(server, await encodeRequest([inv]))
    expect(outOf(receipt!).error?.name).toBe('InvalidCapability')
    expect(receipt!.issuer?.did()).toBe(rsa.did())
    expect((await receipt!.verifySignature(rsa.verifier)).ok).toBeDefined()
  })
})

describe('failures hidden from clients are logged with the invocation', () => {
  test('each handler logs its failure with the invocation CID and ability, and the client gets InternalError', async () => {
    // internal(cause, invocation, what)
    const { server, log, logged } = setup({ revocationRecorder: { record: async () => { throw new Error('db') } } as never })
    log.failNext = new Error('io')
    const inv = await append()
    expect((await send(server, inv)).error?.name).toBe('InternalError')
    log.read = async () => {
      throw new Error('io')
    }
    const r = await read()
    expect((await send(server, r)).error?.name).toBe('InternalError')
    const v = await revokeInvocation({ issuer: P.agent, service: P.service, ucan: agentToService }).delegate()
    expect((await send(server, v)).error?.name).toBe('InternalError')
    expect(logged.map((l) => [l.message, l.details.invocation, l.details.can, (l.details.err as Error).message])).toEqual([
      ['tlog/append: log append failed', inv.cid.toString(), 'tlog/append', 'io'],
      ['tlog/read failed', r.cid.toString(), 'tlog/read', 'io'],
      ['ucan/revoke failed', v.cid.toString(), 'ucan/revoke', 'db'],
    ])
  })

  test('a logger that throws changes nothing clients get: InternalError without a stack, and a failed request is still 400', async () => {
    // guards: the service's logger wrapper. A throw while logging in a handler's catch used to escape
    // the handler to ucanto's `catch`, whose HandlerExecutionError receipt carried the server's stack
    // trace; in the transport's catch it made `request` reject.
    const throwing = { error: () => {
      throw new Error('logger down')
    } }
    const { server, log } = setup({ logger: throwing })
    log.failNext = new Error('io')
    const out = await send(server, await append()) // outOf: exactly { name, message }, no stack
    expect(out.error?.name).toBe('InternalError')
    const { admission } = recordingAdmission()
    admission.turn = async () => {
      throw new Error('scheduler broken')
    }
    const broken = setup({ logger: throwing, admission })
    expect((await post(broken.server, [await append()])).status).toBe(400)
  })

  test('the replay guard cannot commit the answer (SQLITE_IOERR): refused StorageFailed, never appended twice; the same invocation gets its first answer once the disk works (issue 15 item 2)', async () => {
    let fail = true
    const store = UcanStore.open(':memory:', {
      onReplayCommit: () => {
        if (fail) throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_FSYNC' })
      },
    })
    const { server, log } = setup({ replay: store.replay })
    const inv = await append()
    expect((await send(server, inv)).error?.name).toBe('StorageFailed')
    expect((await send(server, inv)).error?.name).toBe('StorageFailed')
    fail = false
    const out = await send(server, inv)
    expect(out.ok?.index).toBe(0)
    expect((await send(server, inv)).ok?.index).toBe(0)
    expect(log.calls).toBe(1)
    store.close()
  })

  test('a replay guard that fails (not full) → InternalError, not TooManyPendingInvocations', async () => {
    // .catch: only ReplayGuardFull becomes TooManyPendingInvocations
    const replay = createMemoryReplayGuard()
    replay.once = async () => {
      throw new Error('guard store down')
    }
    const { server, log, logged } = setup({ replay })
    expect((await send(server, await append())).error?.name).toBe('InternalError')
    expect(log.calls).toBe(0)
    expect(logged.map((l) => l.message)).toEqual(['tlog/append failed'])
  })

  test('a guard shared by instances that refuses with ReplayPending (another instance runs it) → InvocationPending; seen answering undefined goes on to the guard', async () => {
    // .catch: ReplayPending becomes InvocationPending; early(): a seen that resolves undefined is not an answer
    const replay = createMemoryReplayGuard()
    let seen = 0
    replay.seen = () => (seen++, Promise.resolve(undefined))
    replay.once = async (key) => {
      throw new ReplayPending(key.id, 10)
    }
    const { server, log } = setup({ replay })
    const out = await send(server, await append())
    expect(out.error).toEqual({ name: 'InvocationPending', message: 'this invocation is being run by another instance; send it again later' })
    expect([seen, log.calls]).toEqual([1, 0])
  })

  test('an append holds its turn while it is checked and gives every turn back while it waits for its batch', async () => {
    // run(): the handler context's request { ...context, turn }; createTurn's busy/idle counting
    const { admission, turns } = recordingAdmission()
    const log = new RecordingLog()
    const held: string[] = []
    const append0 = log.append.bind(log)
    Object.assign(log, {
      async reserve() {
        held.push(`reserve ${turns.taken - turns.given}`)
        return { release() {} }
      },
      async append(...args: Parameters<RecordingLog['append']>) {
        held.push(`append ${turns.taken - turns.given}`)
        return append0(...args)
      },
    })
    const { server } = setup({ admission, log })
    expect((await post(server, [await append()], '192.0.2.3')).status ?? 200).toBe(200)
    expect(held).toEqual(['reserve 1', 'append 0'])
    expect(turns.given).toBe(turns.taken)
    expect(turns.contexts.map((c) => c.client)).toEqual(['192.0.2.3', '192.0.2.3', '192.0.2.3', '192.0.2.3'])
  })
})

describe('ucan/revoke caveats', () => {
  test('a with that is not a DID, or an nb without a ucan link → InvalidCapability, nothing recorded', async () => {
    const records: unknown[] = []
    const { server } = setup({ revocationRecorder: { record: async (r: unknown) => (records.push(r), { record: r, created: true, index: 0 }) } as never })
    const cap = (c: Record<string, unknown>) =>
      invoke({ issuer: P.agent, audience: P.service, capability: { can: 'ucan/revoke', ...c } as never, expiration: now() + 60 }).delegate()
    expect((await send(server, await cap({ with: 'https://example.com/', nb: { ucan: agentToService.cid } }))).error?.name).toBe('InvalidCapability')
    expect((await send(server, await cap({ with: P.agent.did() }))).error?.name).toBe('InvalidCapability')
    expect((await send(server, await cap({ with: P.agent.did(), nb: { ucan: 'bafy' } }))).error?.name).toBe('InvalidCapability')
    expect(records).toEqual([])
  })
})

describe('ucan/revoke attachments and relation', () => {
  test('a step of nb.proof may be any of the previous UCAN\'s proofs, not only its sole or first one', async () => {
    // checkRevocationPath: path[i - 1].data.proofs.some(link => link = path[i])
    const records: { scope: string }[] = []
    const { server } = setup({ revocationRecorder: { record: async (r: { scope: string }) => (records.push(r), { record: r, created: true, index: 0 }) } as never })
    const other = await delegateSpaceToAgent({ space: P.spaceB, agent: P.agent, expiration: now() + 600 })
    const twoProofs = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [other, spaceToAgent], expiration: now() + 600 })
    const inv = await revokeInvocation({ issuer: P.space, service: P.service, ucan: twoProofs }).delegate()
    expect(inv.capabilities[0]?.nb).toMatchObject({ proof: [spaceToAgent.cid] }) // the space is upstream, through the second proof
    const out = await send(server, inv)
    expect(out.ok, JSON.stringify(out.error)).toMatchObject({ ucan: twoProofs.cid.toString(), scope: P.space.did() })
    expect(records.map((r) => r.scope)).toEqual([P.space.did()])
  })

  test('a UCAN attached under another UCAN\'s CID is not that UCAN → UCANNotFound, nothing recorded', async () => {
    // revoke: checkContentAddressed(nb.ucan's block). Without it, Mallory attaches a UCAN of her own
    // (audience Mallory) under the CID of the agent's delegation and passes the relation check.
    const records: unknown[] = []
    const { server } = setup({ revocationRecorder: { record: async (r: unknown) => (records.push(r), { record: r, created: true, index: 0 }) } as never })
    const fake = await delegate({ issuer: P.agent, audience: P.mallory, capabilities: [{ can: 'tlog/append', with: P.space.did() }], expiration: now() + 600 })
    const inv = await invoke({
      issuer: P.mallory,
      audience: P.service,
      capability: { can: 'ucan/revoke', with: P.mallory.did(), nb: { ucan: agentToService.cid } },
      expiration: now() + 60,
    }).delegate()
    inv.attach({ cid: agentToService.cid, bytes: fake.root.bytes } as never)
    expect((await send(server, inv)).error?.name).toBe('UCANNotFound')
    expect(records).toEqual([])
    // The same invocation with the real bytes would be refused only as unrelated (Mallory is not in it).
    const real = await invoke({
      issuer: P.mallory,
      audience: P.service,
      capability: { can: 'ucan/revoke', with: P.mallory.did(), nb: { ucan: agentToService.cid } },
      expiration: now() + 60,
      proofs: [agentToService],
    }).delegate()
    expect((await send(server, real)).error?.name).toBe('UnrelatedRevocation')
  })
})

describe('ucan/revoke: its own authority, its charges', () => {
  const recorder = (records: unknown[]) => ({ record: async (r: unknown) => (records.push(r), { record: r, created: true, index: 0 }) }) as never

  test('a ucan/revoke whose own delegation was revoked → Revoked; a store failing while checking it → InternalError; nothing recorded', async () => {
    // revoke's access(): validateAuthorization consults the revocation store (try / catch → storeFailed)
    const grant = await delegate({ issuer: P.space, audience: P.alice, capabilities: [{ can: 'ucan/revoke', with: P.space.did() }], expiration: now() + 3600 })
    const byAlice = () => revokeInvocation({ issuer: P.alice, service: P.service, ucan: spaceToAgent, scope: P.space.did(), proofs: [grant] }).delegate()
    const records: unknown[] = []
    const revocations = createMemoryRevocations()
    const { server } = setup({ revocations, revocationRecorder: recorder(records) })
    revocations.add(grant.cid.toString(), P.space.did())
    expect((await send(server, await byAlice())).error?.name).toBe('Revoked')
    const failing = setup({
      revocations: { findRevoked: async () => { throw new Error('store down') } },
      revocationRecorder: recorder(records),
    })
    expect((await send(failing.server, await byAlice())).error?.name).toBe('InternalError')
    expect(records).toEqual([])
    // Unrevoked, the same grant works.
    const ok = setup({ revocationRecorder: recorder(records) })
    expect((await send(ok.server, await byAlice())).ok).toMatchObject({ scope: P.space.did() })
  })

  test('a revocation refused by its client\'s rate among other invocations gets a RateLimited receipt, the others run', async () => {
    const records: unknown[] = []
    const { server, log } = setup({ revocationRecorder: recorder(records), admitRevocation: () => 2 })
    const v = await revokeInvocation({ issuer: P.agent, service: P.service, ucan: agentToService }).delegate()
    const a = await append()
    const receipts = await sendRaw(server, await encodeRequest([v, a]))
    const byRan = new Map(receipts.map((r) => [r.ran.link().toString(), outOf(r)]))
    expect(byRan.get(v.cid.toString())?.error?.name).toBe('RateLimited')
    expect(byRan.get(a.cid.toString())?.ok).toBeDefined()
    expect(records).toEqual([])
    expect(log.appends).toHaveLength(1)
  })

  test('without a recorder a revocation is not charged to its client (InternalError, logged as ucan/revoke)', async () => {
    let asked = 0
    const { server, logged } = setup({ admitRevocation: () => (asked++, undefined) })
    const v = await revokeInvocation({ issuer: P.agent, service: P.service, ucan: agentToService }).delegate()
    expect((await send(server, v)).error?.name).toBe('InternalError')
    expect(asked).toBe(0)
    expect(logged.map((l) => l.message)).toEqual(['ucan/revoke'])
  })

  test('an authorized tlog/create charges its space, like an append', async () => {
    // admitted(invocation, (ok) => ok.space, ...) in create
    const { admission, charges } = recordingAdmission()
    const { server } = setup({ admission })
    const create = await (await createInvocation({ agent: P.agent, service: P.service, space: P.space.did(), agentToService })).delegate()
    expect((await send(server, create)).ok).toBeDefined()
    expect(charges.map((c) => [c.issuer, c.space])).toEqual([[P.agent.did(), P.space.did()]])
  })
})

describe('service defaults follow the options', () => {
  test('the default replay guard runs on the service\'s clock: an append unexpired by it is a replay, whatever the system clock says', async () => {
    // guards: createMemoryReplayGuard({ now }) in createUcanService (the injected clock, not the system's)
    const sys = now()
    const { server, log } = setup({ now: () => sys - 200 })
    const inv = await append(new Uint8Array([1]), P.agent, -100) // exp = sys - 100: past for the system, ahead for the service
    const first = await send(server, inv)
    expect(first.ok, JSON.stringify(first.error)).toBeDefined()
    expect(await send(server, inv)).toEqual(first)
    expect(log.calls, 'appended once').toBe(1)
  })

  test('reservedSpaces given as an option are refused as spaces (ReservedSpace) by append and read; other spaces are not', async () => {
    // guards: new Set(options.reservedSpaces ?? []) in createUcanService
    const { server, log } = setup({ reservedSpaces: [P.space.did()] })
    expect((await send(server, await append())).error?.name).toBe('ReservedSpace')
    expect((await send(server, await read())).error?.name).toBe('ReservedSpace')
    expect(log.calls).toBe(0)
    log.logs.set(P.spaceB.did(), [])
    expect((await send(server, await read(P.agent, P.spaceB.did()))).ok).toEqual({ entries: [], total: 0 })
  })
})
