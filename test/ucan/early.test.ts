/**
 * Answers given before any signature or chain work (src/ucan/handlers/append.ts `early`, context.ts `creationRefusal`): a replay of an
 * answered append gets its first outcome without being authorized again, and a write that would
 * create a log its client may not create now is refused by name. Both are counted in signature
 * verifications, which must stay at zero for these requests.
 */
import { beforeAll, describe, expect, test, vi } from 'vitest'
import { invoke } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { appendInvocation, createInvocation, createPrincipalParser, createUcanService, delegateAgentToService, delegateSpaceToAgent, LogCreationLimited } from '../../src/ucan/index.js'
import { createMemoryRevocations } from '../../src/ucan/revocation.js'
import { type ReplayGuard, createMemoryReplayGuard } from '../../src/ucan/replay.js'
import { createAdmission } from '../../src/server/rate-limit.js'
import { type Principals, RecordingLog, encodeRequest, outOf, principals, send } from './helpers.js'
import * as CAR from '@ucanto/transport/car'

let P: Principals
beforeAll(async () => {
  P = await principals()
})

/** node:crypto's parser, counting every signature verification. */
function countingParser(): { parser: API.PrincipalParser; verifies: () => number } {
  const inner = createPrincipalParser()
  let n = 0
  return {
    parser: {
      parse(did) {
        const v = inner.parse(did)
        return {
          did: () => v.did(),
          toDIDKey: () => v.toDIDKey(),
          withDID: (id: API.DID) => v.withDID(id),
          verify: (payload: Uint8Array, signature: API.Signature) => {
            n++
            return v.verify(payload, signature)
          },
        } as API.Verifier
      },
    },
    verifies: () => n,
  }
}

describe('answers before authorization', () => {
  test('a replay of an answered append gets the first outcome with no signature checked, even once its chain is revoked', async () => {
    const { parser, verifies } = countingParser()
    const log = new RecordingLog()
    const revocations = createMemoryRevocations()
    const server = createUcanService({ signer: P.service, log, principal: parser, revocations })
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const agentToService = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], space: P.space.did() })
    const inv = await (await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([1]), agentToService })).delegate()
    const first = await send(server, inv)
    expect(first.ok, JSON.stringify(first.error)).toMatchObject({ index: 0 })
    const afterFirst = verifies()
    expect(afterFirst).toBeGreaterThan(0)

    // Revoke the Agent→Service delegation: a fresh invocation is refused, the replay is not.
    revocations.add(agentToService.cid.toString(), P.agent.did())
    const fresh = await (await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([2]), agentToService })).delegate()
    expect((await send(server, fresh)).error?.name).toBe('Revoked')
    const beforeReplays = verifies()
    for (let i = 0; i < 5; i++) expect(await send(server, inv)).toEqual(first)
    expect(verifies() - beforeReplays, 'signature verifications for 5 replays').toBe(0)
    expect(log.calls).toBe(1)
  })

  test('a write that would create a log its client may not create is refused (LogCreationLimited) before any signature check', async () => {
    const { parser, verifies } = countingParser()
    const log = new RecordingLog()
    const asked: { space: string; client?: string }[] = []
    Object.assign(log, {
      async creationRefusal(space: string, meta: { client?: string }) {
        asked.push({ space, ...meta })
        return new LogCreationLimited('too many logs created from this address; retry later')
      },
    })
    log.refuse()
    const server = createUcanService({ signer: P.service, log, principal: parser })
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const agentToService = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], space: P.space.did() })
    const append = await (await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([1]), agentToService })).delegate()
    const create = await (await createInvocation({ agent: P.agent, service: P.service, space: P.space.did(), agentToService })).delegate()
    expect((await send(server, append)).error?.name).toBe('LogCreationLimited')
    expect((await send(server, create)).error?.name).toBe('LogCreationLimited')
    expect(verifies()).toBe(0)
    expect(asked.map((a) => a.space)).toEqual([P.space.did(), P.space.did()])
  })

  // guards: `{ proofs: false }` in the early replay answer of src/ucan/handlers/append.ts: only the
  // invocation's own bytes are checked against its CID; a replay cannot force chain work by
  // attaching a bad copy of one of its proofs (which authorize nothing: the chain is nb.delegation).
  test('a replay with a proof block that is not under its CID still gets the first outcome, with no signature checked', async () => {
    const { parser, verifies } = countingParser()
    const log = new RecordingLog()
    const server = createUcanService({ signer: P.service, log, principal: parser })
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const agentToService = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], space: P.space.did() })
    const issued = await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([1]), agentToService })
    const inv = await invoke({ issuer: P.agent, audience: P.service, capability: issued.capabilities[0] as never, proofs: [spaceToAgent], expiration: Math.floor(Date.now() / 1000) + 60 }).delegate()
    const first = await send(server, inv)
    expect(first.ok, JSON.stringify(first.error)).toMatchObject({ index: 0 })
    const other = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: Math.floor(Date.now() / 1000) + 999 })
    expect(inv.blocks.has(spaceToAgent.cid.toString())).toBe(true)
    inv.blocks.set(spaceToAgent.cid.toString(), { cid: spaceToAgent.cid, bytes: other.root.bytes } as never)
    const before = verifies()
    expect(await send(server, inv)).toEqual(first)
    expect(verifies() - before, 'signature verifications for the replay').toBe(0)
    expect(log.calls).toBe(1)
  })

  // guards: creationRefusal in src/ucan/handlers/context.ts passes the request's context (its
  // client address) to the log service: log creation is limited per client address.
  test('the creation refusal is asked for the request\'s client address: that address is refused, another creates', async () => {
    const log = new RecordingLog()
    const asked: (string | undefined)[] = []
    Object.assign(log, {
      async creationRefusal(_space: string, meta: { client?: string }) {
        asked.push(meta.client)
        return meta.client === '192.0.2.7' ? new LogCreationLimited('too many logs created from this address; retry later') : undefined
      },
    })
    const server = createUcanService({ signer: P.service, log })
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const agentToService = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], space: P.space.did() })
    const post = async (inv: API.Invocation, client: string) => {
      const res = await server.request({ ...(await encodeRequest([inv])), client } as never)
      const message = await CAR.outbound.decode(res as never)
      return outOf([...(message as unknown as { receipts: Map<string, unknown> }).receipts.values()][0] as never)
    }
    const append = () => appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([1]), agentToService }).then((i) => i.delegate())
    const create = async () => (await createInvocation({ agent: P.agent, service: P.service, space: P.space.did(), agentToService })).delegate()
    expect((await post(await append(), '192.0.2.7')).error?.name).toBe('LogCreationLimited')
    expect((await post(await create(), '192.0.2.7')).error?.name).toBe('LogCreationLimited')
    expect(log.calls).toBe(0)
    expect(asked).toEqual(['192.0.2.7', '192.0.2.7'])
    const other = await post(await append(), '192.0.2.8')
    expect(other.ok, JSON.stringify(other.error)).toMatchObject({ index: 0 })
    expect(log.calls).toBe(1)
  })

  // guards: the expiry check on the early replay answer in src/ucan/handlers/append.ts (`s.now() <=
  // invocation.expiration`): the service's clock decides, not the replay guard's.
  test('a replay after its invocation expired (service clock) is refused Expired, even by a replay guard on another clock that still remembers it', async () => {
    const log = new RecordingLog()
    const t0 = Math.floor(Date.now() / 1000)
    let t = t0
    const replay = createMemoryReplayGuard({ now: () => t0 }) // its clock never moves: it remembers the outcome
    const server = createUcanService({ signer: P.service, log, now: () => t, replay })
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const agentToService = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], space: P.space.did() })
    const inv = await (await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([1]), agentToService, lifetime: 60 })).delegate()
    const first = await send(server, inv)
    expect(first.ok, JSON.stringify(first.error)).toMatchObject({ index: 0 })
    t = inv.expiration // the last second it is valid: the replay gets the first outcome
    expect(await send(server, inv)).toEqual(first)
    t = inv.expiration + 1
    expect(replay.seen(inv.cid.toString()), 'the guard still remembers it').toBeDefined()
    expect((await send(server, inv)).error?.name).toBe('Expired')
    expect(log.calls).toBe(1)
  })

  test('a replay waiting for the same invocation run by another request gives its turn back (no deadlock at one turn per address)', async () => {
    const log = new RecordingLog()
    let release: () => void = () => {}
    const gate = new Promise<void>((r) => (release = r))
    let appending: () => void = () => {}
    const started = new Promise<void>((r) => (appending = r))
    const slow = Object.assign(Object.create(log), {
      async append(...args: Parameters<RecordingLog['append']>) {
        appending()
        await gate
        return log.append(...args)
      },
    }) as RecordingLog
    // One request worked on at a time per address, and in the whole service.
    const off = { rate: 0, burst: 0 }
    const admission = createAdmission({ client: off, agent: off, space: off, concurrency: 1, globalConcurrency: 1 })
    // The replay guard tells when a request found this invocation already in flight (the replay,
    // inside its turn, about to wait for the first's outcome).
    const guard = createMemoryReplayGuard()
    let foundInFlight: () => void = () => {}
    const found = new Promise<void>((r) => (foundInFlight = r))
    const replayGuard: ReplayGuard = {
      once: (key, task) => guard.once(key, task),
      seen<T>(id: string) {
        const known = guard.seen<T>(id)
        if (known !== undefined) foundInFlight()
        return known
      },
    }
    const server = createUcanService({ signer: P.service, log: slow, admission, replay: replayGuard })
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const inv = await (await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([1]), spaceToAgent })).delegate()
    const body = await encodeRequest([inv])
    const post = async () => {
      const res = await server.request({ ...body, client: '192.0.2.1' } as never)
      const message = await CAR.outbound.decode(res as never)
      return outOf([...(message as unknown as { receipts: Map<string, unknown> }).receipts.values()][0] as never)
    }
    // Generous outer bound: a deadlock shows as no progress at all, never as slowness.
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error('deadlock: no progress within 10 s')), 10_000)))
    const first = post()
    await started // the first request's append is waiting for its batch (its turn given back)
    const replay = post() // takes the only turn, finds the first run in flight
    await Promise.race([found, timeout]) // the replay holds the turn now: the first can only finish if the replay gives it back
    release()
    const [a, b] = (await Promise.race([Promise.all([first, replay]), timeout])) as [unknown, unknown]
    clearTimeout(timer)
    expect(a).toEqual(b)
    expect(log.calls).toBe(1)
  })

  test('a request refused by a rate limit is held --refusal-delay before its 429 (the tarpit), at most its Retry-After', async () => {
    const off = { rate: 0, burst: 0 }
    const admission = createAdmission({ client: { rate: 0.001, burst: 1 }, agent: off, space: off })
    const server = createUcanService({ signer: P.service, log: new RecordingLog(), admission, refusalDelayMs: 700 })
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const body = await encodeRequest([await (await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([1]), spaceToAgent })).delegate()])
    await server.request({ ...body, client: '192.0.2.9' } as never) // takes the only token
    vi.useFakeTimers()
    try {
      let answered: { status?: number; headers: Record<string, string> } | undefined
      const refused = Promise.resolve(server.request({ ...body, client: '192.0.2.9' } as never)).then((r) => (answered = r as never))
      await vi.advanceTimersByTimeAsync(699)
      expect(answered, 'answered before the refusal delay').toBeUndefined()
      await vi.advanceTimersByTimeAsync(1)
      await refused
      expect(answered?.status).toBe(429)
      expect(Number(answered?.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    } finally {
      vi.useRealTimers()
    }
  })
})
